#!/usr/bin/env python3
"""Make fixtures/synthetic/esp-replay-gap.pcap from a real strongSwan capture.

The source is ``fixtures/strongswan/ikev2-gcm/capture.pcap`` (IKEv2, AES-GCM,
ESP in UDP 4500, recorded clean: every SPI's sequence numbers run 1, 2, 3, ...
in frame order).  Three edits, each on whole records, bytes untouched:

* **gap**: the packets with sequence numbers 20, 21 and 22 of SA 0xd756a735
  (192.0.2.1 -> 192.0.2.2) are removed;
* **reorder**: the packet with sequence number 10 of SA 0x6a207518
  (192.0.2.2 -> 192.0.2.1) is moved to just after that SA's packet 13, as if
  the network had delayed it (its timestamp becomes the midpoint of its new
  neighbours', so the capture stays in time order);
* **replay**: an exact copy of SA 0xd756a735's packet 12 is inserted later,
  after the CREATE_CHILD_SA that rekeyed that SA (just after packet 8 of the
  new SA 0xbfc1accf, as an attacker replaying a recorded packet might), with
  a timestamp midway between its neighbours'.  SA 0xd756a735's highest
  number is then 37: the copy is 25 behind, inside a 32 or 64 window.

It writes the capture and, beside it, ``esp-replay-gap.json``: what it did,
with the source and output frame numbers of every packet involved and the
SHA-256 of both files.  The tests take the expected anti-replay events from
that record and check them against tshark's reading of the output.

    python3 tools/make_replay_capture.py            # rewrites both files

Standard library only (struct); deterministic.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import struct

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SOURCE = "fixtures/strongswan/ikev2-gcm/capture.pcap"
OUTPUT = "fixtures/synthetic/esp-replay-gap.pcap"

GAP_SPI, GAP_SEQS = 0xD756A735, (20, 21, 22)
REORDER_SPI, REORDER_SEQ, REORDER_AFTER = 0x6A207518, 10, 13
REPLAY_SPI, REPLAY_SEQ = 0xD756A735, 12
REPLAY_AFTER = (0xBFC1ACCF, 8)  # the packet the copy follows


def read_pcap(path: str) -> tuple[bytes, str, list[list]]:
    """Global header, byte order and records [ts_sec, ts_frac, orig_len, data] of a classic pcap."""
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:4]
    order = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">",
             b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\x3c\x4d": ">"}.get(magic)
    if order is None:
        raise SystemExit(f"{path}: not a classic pcap")
    hdr = struct.Struct(order + "IIII")
    records, off = [], 24
    while off + 16 <= len(data):
        sec, frac, incl, orig = hdr.unpack_from(data, off)
        records.append([sec, frac, orig, data[off + 16:off + 16 + incl]])
        off += 16 + incl
    return data[:24], order, records


def esp_of(frame: bytes) -> tuple[int, int] | None:
    """(SPI, sequence number) of an Ethernet / IPv4 / UDP 4500 / ESP frame, else None."""
    if len(frame) < 14 or frame[12:14] != b"\x08\x00":
        return None
    ip = 14
    ihl = (frame[ip] & 0x0F) * 4  # RFC 791
    if frame[ip + 9] != 17:  # UDP
        return None
    udp = ip + ihl
    if struct.unpack_from("!H", frame, udp + 2)[0] != 4500:
        return None
    esp = udp + 8  # RFC 3948 2.2: ESP right after the UDP header, SPI never 0
    if len(frame) < esp + 8:
        return None
    spi, seq = struct.unpack_from("!II", frame, esp)
    return (spi, seq) if spi else None


def midpoint(a: list, b: list, resolution: int) -> tuple[int, int]:
    t = ((a[0] * resolution + a[1]) + (b[0] * resolution + b[1])) // 2
    return divmod(t, resolution)


def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", default=os.path.join(ROOT, SOURCE))
    ap.add_argument("--out", default=os.path.join(ROOT, OUTPUT))
    args = ap.parse_args()

    ghdr, order, records = read_pcap(args.source)
    nano = ghdr[:4] in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    resolution = 10**9 if nano else 10**6
    # each record remembers its source frame number (1-based) and what it carries
    rows = [{"src_frame": i, "rec": r, "esp": esp_of(r[3])} for i, r in enumerate(records, 1)]

    def find(spi, seq):
        (hit,) = [r for r in rows if r["esp"] == (spi, seq)]
        return hit

    # gap: drop three packets of one SA
    removed = [find(GAP_SPI, s) for s in GAP_SEQS]
    rows = [r for r in rows if r not in removed]
    # reorder: move one packet after a later one of its SA; it arrives late
    moved = find(REORDER_SPI, REORDER_SEQ)
    rows.remove(moved)
    after = rows.index(find(REORDER_SPI, REORDER_AFTER))
    rows.insert(after + 1, moved)
    moved["rec"] = list(moved["rec"])
    moved["rec"][0], moved["rec"][1] = midpoint(rows[after]["rec"], rows[after + 2]["rec"], resolution)
    # replay: an exact copy of one packet, later in the capture
    original = find(REPLAY_SPI, REPLAY_SEQ)
    last = rows.index(find(*REPLAY_AFTER))
    copy = {"src_frame": None, "rec": list(original["rec"]), "esp": original["esp"]}
    copy["rec"][0], copy["rec"][1] = midpoint(rows[last]["rec"], rows[last + 1]["rec"], resolution)
    rows.insert(last + 1, copy)

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    hdr = struct.Struct(order + "IIII")
    with open(args.out, "wb") as f:
        f.write(ghdr)
        for r in rows:
            sec, frac, orig, data = r["rec"]
            f.write(hdr.pack(sec, frac, len(data), orig))
            f.write(data)

    out_frame = {id(r): i for i, r in enumerate(rows, 1)}

    def frame_of(spi, seq):
        return out_frame[id(next(r for r in rows if r["esp"] == (spi, seq) and r is not copy))]

    spi_text = "0x{:08x}".format
    record = {
        "source": os.path.relpath(args.source, ROOT), "source_sha256": sha256(args.source),
        "output": os.path.relpath(args.out, ROOT), "output_sha256": sha256(args.out),
        "made_by": "tools/make_replay_capture.py",
        "frames": len(rows),
        "gap": {"spi": spi_text(GAP_SPI), "src": "192.0.2.1", "dst": "192.0.2.2",
                "removed_seqs": list(GAP_SEQS), "removed_source_frames": [r["src_frame"] for r in removed],
                "after_seq": GAP_SEQS[0] - 1, "next_seq": GAP_SEQS[-1] + 1,
                "next_frame": frame_of(GAP_SPI, GAP_SEQS[-1] + 1)},
        "reorder": {"spi": spi_text(REORDER_SPI), "src": "192.0.2.2", "dst": "192.0.2.1",
                    "seq": REORDER_SEQ, "source_frame": moved["src_frame"], "frame": out_frame[id(moved)],
                    "after_seq": REORDER_AFTER, "after_frame": frame_of(REORDER_SPI, REORDER_AFTER)},
        "replay": {"spi": spi_text(REPLAY_SPI), "src": "192.0.2.1", "dst": "192.0.2.2",
                   "seq": REPLAY_SEQ, "source_frame": original["src_frame"],
                   "original_frame": frame_of(REPLAY_SPI, REPLAY_SEQ), "frame": out_frame[id(copy)],
                   "highest_before": max(r["esp"][1] for r in rows[:last + 1]
                                         if r["esp"] and r["esp"][0] == REPLAY_SPI),
                   "after_frame": last + 1},
    }
    with open(os.path.splitext(args.out)[0] + ".json", "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2)
        f.write("\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
