"""Commands of the rule pack: ``findings`` and ``psk-hashes``."""
from __future__ import annotations
