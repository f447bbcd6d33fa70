"""Commands of the deep path: ``crosscheck`` (fast engine against tshark, frame by frame)."""
from __future__ import annotations
