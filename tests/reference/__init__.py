"""Independent references the whole-capture tests compare against.

``tshark`` runs Wireshark's dissectors over a capture (STYLE.md, Tests: compare
against an independent reference, never against our own earlier output).
This module also lists the captures those tests walk: every row of
``fixtures/public/MANIFEST.tsv`` and every ``fixtures/strongswan/*/capture.pcap``.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "fixtures"
PUBLIC = FIXTURES / "public"
MANIFEST = PUBLIC / "MANIFEST.tsv"
STRONGSWAN = FIXTURES / "strongswan"


@dataclass(frozen=True)
class Capture:
    """A capture the whole-capture tests walk, with the manifest's counts
    (tshark 4.0.17, ``frame.protocols``) when it has a manifest row."""

    name: str  # path relative to fixtures/, e.g. "public/tcpdump/espudp1.pcap"
    path: Path
    frames: int | None = None
    isakmp_frames: int | None = None
    esp_frames: int | None = None
    ah_frames: int | None = None
    keys: tuple[Path, ...] = ()  # the key files published with it (MANIFEST keys_file; strongSwan: its tables)
    tshark_decrypts: str | None = None  # MANIFEST: yes / no / na


def _manifest_keys(text: str) -> tuple[Path, ...]:
    """The MANIFEST's keys_file column: paths separated by ';', each perhaps
    followed by a note in parentheses."""
    out = []
    for part in text.split(";"):
        part = part.split(" (", 1)[0].strip()
        if part:
            out.append(PUBLIC / part)
    return tuple(out)


STRONGSWAN_KEY_FILES = ("esp_sa", "ikev1_decryption_table", "ikev2_decryption_table", "keys.yaml")


def manifest_captures() -> list[Capture]:
    """One :class:`Capture` per row of fixtures/public/MANIFEST.tsv, in file order."""
    with MANIFEST.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    return [Capture(f"public/{r['path']}", PUBLIC / r["path"], int(r["frames"]), int(r["isakmp_frames"]),
                    int(r["esp_frames"]), int(r["ah_frames"]), _manifest_keys(r["keys_file"]),
                    r["tshark_decrypts"]) for r in rows]


def strongswan_captures() -> list[Capture]:
    """fixtures/strongswan/*/capture.pcap (our own recordings), sorted; none yet is fine."""
    return [Capture(p.relative_to(FIXTURES).as_posix(), p,
                    keys=tuple(p.parent / k for k in STRONGSWAN_KEY_FILES if (p.parent / k).exists()))
            for p in sorted(STRONGSWAN.glob("*/capture.pcap"))]


def all_captures() -> list[Capture]:
    return manifest_captures() + strongswan_captures()


SYNTHETIC = FIXTURES / "synthetic"


def synthetic_captures() -> list[Capture]:
    """fixtures/synthetic/*.pcap (our recordings edited on purpose), with the
    ``<name>.esp_sa`` beside one as its keys."""
    return [Capture(p.relative_to(FIXTURES).as_posix(), p,
                    keys=(p.with_suffix(".esp_sa"),) if p.with_suffix(".esp_sa").exists() else ())
            for p in sorted(SYNTHETIC.glob("*.pcap"))]


def every_capture() -> list[Capture]:
    """Every capture in fixtures/: the public ones, the strongSwan recordings and the synthetic ones."""
    return all_captures() + synthetic_captures()
