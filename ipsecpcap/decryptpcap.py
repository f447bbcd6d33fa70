"""Write a decrypted capture: every ESP packet that verifies and decrypts
becomes the packet it carried.

* tunnel mode: the inner IP packet, behind the original link-layer header
  (its ethertype / address family adjusted to the inner IP version);
* transport mode: the outer IP header (and any AH or extension headers) with
  the next-header field that pointed at ESP (or at the UDP header of ESP in
  UDP) set to ESP's next header, followed by the decrypted payload; lengths
  and the IPv4 header checksum are fixed.

Original timestamps are kept.  Other frames are copied unchanged, unless
``only_decrypted``.  The output is classic pcap when every frame has one link
type (and the name does not end in ``.pcapng``), else pcapng with one
interface per link type.  The file appears whole or not at all.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

from .analysis import capture_name
from .decode import (IPPROTO_AH, IPPROTO_FRAGMENT, IPPROTO_IPIP, IPPROTO_IPV6, IPPROTO_NONE, IPV6_EXT_SIMPLE,
                     LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_LOOP, LINKTYPE_NULL,
                     KeyedDecoder)
from .errors import InputError
from .output import output_stream
from .reader import CaptureError, open_capture
from .sacrypto import SaCrypto
from .tracker import Tracker


@dataclass
class DecryptStats:
    frames: int = 0
    written: int = 0
    decrypted: int = 0  # ESP packets replaced by what they carried
    failed: int = 0  # ESP packets with a key that did not verify or decrypt


def _ip_checksum(hdr: bytes) -> int:
    if len(hdr) % 2:
        hdr += b"\0"
    s = sum(struct.unpack(f"!{len(hdr) // 2}H", hdr))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def _next_header_field(pkt: bytes, target: int) -> int | None:
    """Offset of the next-header byte that names the header starting at
    ``target`` (ESP, or UDP for ESP in UDP), walking IPv4/AH or IPv6
    extension headers from the start of ``pkt``."""
    v = pkt[0] >> 4
    if v == 4:
        field, cur = 9, (pkt[0] & 15) * 4
    elif v == 6:
        field, cur = 6, 40
    else:
        return None
    while cur < target:
        nh = pkt[field]
        if nh == IPPROTO_AH:
            length = (pkt[cur + 1] + 2) * 4
        elif v == 6 and nh in IPV6_EXT_SIMPLE:
            length = (pkt[cur + 1] + 1) * 8
        elif v == 6 and nh == IPPROTO_FRAGMENT:
            length = 8
        else:
            return None
        field, cur = cur, cur + length
    return field if cur == target else None


def rebuild(lt: int, frame: bytes, ip_off: int, esp_off: int, udp: bool, next_header: int,
            payload: bytes) -> bytes | None:
    """The frame with its ESP replaced by what ESP carried; None if it cannot be rebuilt."""
    link = bytearray(frame[:ip_off])
    if next_header in (IPPROTO_IPIP, IPPROTO_IPV6):
        if not payload:
            return None
        version = payload[0] >> 4
        _set_link_family(lt, link, version)
        return bytes(link) + payload
    if next_header == IPPROTO_NONE:
        return None
    pkt = bytearray(frame[ip_off:])
    target = esp_off - ip_off - (8 if udp else 0)
    field = _next_header_field(bytes(pkt), target)
    if field is None:
        return None
    pkt[field] = next_header
    new = pkt[:target] + payload
    if new[0] >> 4 == 4:
        ihl = (new[0] & 15) * 4
        struct.pack_into("!H", new, 2, len(new))
        struct.pack_into("!H", new, 10, 0)
        struct.pack_into("!H", new, 10, _ip_checksum(bytes(new[:ihl])))
    else:
        struct.pack_into("!H", new, 4, len(new) - 40)
    return bytes(link) + bytes(new)


def _set_link_family(lt: int, link: bytearray, version: int) -> None:
    et = 0x0800 if version == 4 else 0x86DD
    if lt in (LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL) and len(link) >= 2:
        struct.pack_into("!H", link, len(link) - 2, et)  # the ethertype just before the IP header
    elif lt == LINKTYPE_LINUX_SLL2 and len(link) >= 2:
        struct.pack_into("!H", link, 0, et)
    elif lt in (LINKTYPE_NULL, LINKTYPE_LOOP) and len(link) >= 4:
        fam = 2 if version == 4 else 24
        struct.pack_into("<I" if lt == LINKTYPE_NULL else "!I", link, 0, fam)


class _Writer:
    """Classic pcap or pcapng, microsecond timestamps."""

    def __init__(self, out, linktypes: list[int], pcapng: bool):
        self.out, self.pcapng = out, pcapng
        self.ifaces = {lt: i for i, lt in enumerate(linktypes)}
        if pcapng:
            shb_body = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)
            out.write(struct.pack("<II", 0x0A0D0D0A, 12 + len(shb_body)) + shb_body + struct.pack("<I", 12 + len(shb_body)))
            for lt in linktypes:
                body = struct.pack("<HHI", lt, 0, 0)
                out.write(struct.pack("<II", 1, 12 + len(body)) + body + struct.pack("<I", 12 + len(body)))
        else:
            out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, linktypes[0]))

    def write(self, lt: int, ts: float, data: bytes, origlen: int) -> None:
        usec = int(round(ts * 1_000_000))
        if self.pcapng:
            pad = (-len(data)) % 4
            total = 32 + len(data) + pad
            self.out.write(struct.pack("<IIIIIII", 6, total, self.ifaces[lt], usec >> 32, usec & 0xFFFFFFFF,
                                       len(data), max(origlen, len(data))) + data + b"\0" * pad
                           + struct.pack("<I", total))
        else:
            sec, us = divmod(usec, 1_000_000)
            self.out.write(struct.pack("<IIII", sec, us, len(data), max(origlen, len(data))) + data)


def _linktypes(paths) -> list[int]:
    seen: list[int] = []
    for path in paths:
        with open_capture(path) as reader:
            for block in reader:
                lts = [block.linktypes] if isinstance(block.linktypes, int) else block.linktypes
                for lt in lts:
                    if lt not in seen:
                        seen.append(lt)
    return seen or [LINKTYPE_ETHERNET]


def decrypt_captures(paths: list, crypto: SaCrypto, out_path: str, *, only_decrypted: bool = False) -> DecryptStats:
    """Write the decrypted capture of ``paths`` to ``out_path``."""
    if "-" in paths:
        raise InputError("decrypt reads its captures twice (link types, then packets): give files, not -")
    stats = DecryptStats()
    try:
        lts = _linktypes(paths)
        pcapng = len(lts) > 1 or out_path.endswith(".pcapng")
        with output_stream(out_path, binary=True) as out:
            w = _Writer(out, lts, pcapng)
            for path in paths:
                dec = KeyedDecoder(Tracker(capture_name(path)), crypto)
                with open_capture(path) as reader:
                    for block in reader:
                        data = block.data
                        for i, (off, caplen, origlen, ts) in enumerate(
                                zip(block.offsets, block.caplens, block.origlens, block.ts)):
                            lt = block.linktypes if isinstance(block.linktypes, int) else block.linktypes[i]
                            stats.frames += 1
                            dec.frame(lt, data, off, off + caplen, ts, block.frames[i])
                            frame = bytes(data[off:off + caplen])
                            opened = dec.opened
                            new = None
                            if opened is not None:
                                _buf, ip_off, esp_off, udp, res = opened
                                if res.status == "ok":
                                    new = rebuild(lt, frame, ip_off - off, esp_off - off, udp,
                                                  res.next_header, res.payload)
                                else:
                                    stats.failed += 1
                            if new is not None:
                                stats.decrypted += 1
                                stats.written += 1
                                w.write(lt, ts, new, len(new) + max(0, origlen - caplen))
                            elif not only_decrypted:
                                stats.written += 1
                                w.write(lt, ts, frame, origlen)
    except CaptureError as e:
        raise InputError(str(e)) from None
    except FileNotFoundError as e:
        raise InputError(f"{e.filename}: no such file") from None
    return stats

