"""Command ``psk-hashes``: the offline-crackable parameters of IKEv1 Aggressive Mode PSK."""
from __future__ import annotations
