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

import os
import struct
from dataclasses import dataclass

import numpy as np

from .analysis import capture_name
from .decode import (IPPROTO_AH, IPPROTO_FRAGMENT, IPPROTO_IPIP, IPPROTO_IPV6, IPPROTO_NONE, IPV6_EXT_SIMPLE,
                     LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_LOOP, LINKTYPE_NULL,
                     KeyedDecoder)
from .errors import InputError
from .output import output_stream
from .reader import CaptureError, open_capture
from .sacrypto import SaCrypto
from .tracker import Tracker
from .vector import _be32, classify, gather


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


_REC = struct.Struct("<IIII").pack


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
        self.out.write(self.record(lt, ts, data, origlen))

    def record(self, lt: int, ts: float, data: bytes, origlen: int) -> bytes:
        """The bytes of one record (header and data)."""
        usec = int(round(ts * 1_000_000))
        if self.pcapng:
            pad = (-len(data)) % 4
            total = 32 + len(data) + pad
            return (struct.pack("<IIIIIII", 6, total, self.ifaces[lt], usec >> 32, usec & 0xFFFFFFFF,
                                len(data), max(origlen, len(data))) + data + b"\0" * pad
                    + struct.pack("<I", total))
        sec, us = divmod(usec, 1_000_000)
        return _REC(sec, us, len(data), max(origlen, len(data))) + data


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
    """Write the decrypted capture of ``paths`` to ``out_path``.

    Blocks of Ethernet records go the fast way (:func:`_fast_block`): the ESP
    frames are found with numpy and opened directly; every other frame, and
    every block of another link type, goes through the keyed decoder frame by
    frame.  ``IPSECPCAP_FASTPATH=packet`` sends every frame that way."""
    if "-" in paths:
        raise InputError("decrypt reads its captures twice (link types, then packets): give files, not -")
    stats = DecryptStats()
    fast = os.environ.get("IPSECPCAP_FASTPATH", "vector") != "packet"
    try:
        lts = _linktypes(paths)
        pcapng = len(lts) > 1 or out_path.endswith(".pcapng")
        with output_stream(out_path, binary=True) as out:
            w = _Writer(out, lts, pcapng)
            for path in paths:
                dec = KeyedDecoder(Tracker(capture_name(path)), crypto)
                with open_capture(path) as reader:
                    for block in reader:
                        if fast and block.linktypes == LINKTYPE_ETHERNET and block.offsets:
                            _fast_block(block, dec, crypto, w, stats, only_decrypted)
                            continue
                        data = block.data
                        for i, (off, caplen, origlen, ts) in enumerate(
                                zip(block.offsets, block.caplens, block.origlens, block.ts)):
                            lt = block.linktypes if isinstance(block.linktypes, int) else block.linktypes[i]
                            _one_frame(dec, lt, data, off, caplen, origlen, ts, block.frames[i], w, stats,
                                       only_decrypted)
    except CaptureError as e:
        raise InputError(str(e)) from None
    except FileNotFoundError as e:
        raise InputError(f"{e.filename}: no such file") from None
    return stats


def _one_frame(dec, lt, data, off, caplen, origlen, ts, frame_no, w, stats, only_decrypted) -> None:
    """One frame through the keyed decoder, written decrypted or as it was."""
    stats.frames += 1
    dec.frame(lt, data, off, off + caplen, ts, frame_no)
    frame = bytes(data[off:off + caplen])
    opened = dec.opened
    new = None
    if opened is not None:
        _buf, ip_off, esp_off, udp, res = opened
        if res.status == "ok":
            new = rebuild(lt, frame, ip_off - off, esp_off - off, udp, res.next_header, res.payload)
        else:
            stats.failed += 1
    if new is not None:
        stats.decrypted += 1
        stats.written += 1
        w.write(lt, ts, new, len(new) + max(0, origlen - caplen))
    elif not only_decrypted:
        stats.written += 1
        w.write(lt, ts, frame, origlen)


def _fast_block(block, dec, crypto, w, stats, only_decrypted) -> None:
    """A block of Ethernet records.  The ESP frames the fast path recognises
    (untagged IPv4 without options or fragments, ESP or ESP in UDP 4500) are
    opened with the same SaCrypto call the keyed decoder makes, in frame
    order, so the key binding and ESN inference see the same packets.
    Plain TCP / UDP, IKE and non-IP frames are copied: the keyed decoder would
    only have counted them.  What the keyed decoder would do next with a
    decrypted packet only feeds the analysis -- unless the inner packet can itself reach the crypto (ESP or
    AH inside, IP in IP, UDP to 500 / 4500, a fragment, IPv6), which then
    goes through the keyed decoder as it would have."""
    rows, offs, caps, _ = gather(block)
    c = classify(rows, caps)
    esp = c.is_esp
    if not esp.any():
        for i, (off, caplen, origlen, ts) in enumerate(zip(block.offsets, block.caplens, block.origlens, block.ts)):
            _one_frame(dec, LINKTYPE_ETHERNET, block.data, off, caplen, origlen, ts, block.frames[i], w, stats,
                       only_decrypted)
        return
    udp = c.esp_udp
    p_from = offs + 34 + np.where(udp, 8, 0)
    p_to = offs + 34 + c.avail  # as the keyed decoder: to the end of the IP datagram, even in UDP
    spi = np.where(udp, _be32(rows, 42), _be32(rows, 34)).tolist()
    seq = np.where(udp, _be32(rows, 46), _be32(rows, 38)).tolist()
    # frames the keyed decoder would only count or hand to the analysis: copied as they are
    plain = (c.is_flow | c.isolated).tolist()
    esp, udp, p_from, p_to = esp.tolist(), udp.tolist(), p_from.tolist(), p_to.tolist()
    tot = c.tot.tolist()
    data = block.data
    frames = block.frames
    opener = crypto.esp
    out = []  # the records of the block, written at once (frame by frame ones flush it first)
    write = out.append
    record = w.record
    lt = LINKTYPE_ETHERNET
    for i, (off, caplen, origlen, ts) in enumerate(zip(block.offsets, block.caplens, block.origlens, block.ts)):
        if plain[i]:
            stats.frames += 1
            if not only_decrypted:
                stats.written += 1
                write(record(lt, ts, data[off:off + caplen], origlen))
            continue
        if not esp[i]:
            if out:
                w.out.write(b"".join(out))
                out.clear()
            _one_frame(dec, lt, data, off, caplen, origlen, ts, frames[i], w, stats, only_decrypted)
            continue
        stats.frames += 1
        addrs = data[off + 26:off + 34]
        res = opener(spi[i], addrs, seq[i], data[p_from[i]:p_to[i]])
        if res is not None and res.status == "ok":
            nh, payload = res.next_header, res.payload
            if _inner_needs_decoder(nh, payload):
                _inner(dec, nh, payload, data, off, addrs, tot[i], ts, frames[i], spi[i])
            if nh == IPPROTO_IPIP or nh == IPPROTO_IPV6:
                # tunnel mode: the inner IP packet behind the Ethernet header, its ethertype set
                new = data[off:off + 12] + (b"\x08\x00" if payload and payload[0] >> 4 == 4 else b"\x86\xdd") + payload \
                    if payload else None
            else:
                new = rebuild(lt, data[off:off + caplen], 14, p_from[i] - off, udp[i], nh, payload)
            if new is not None:
                stats.decrypted += 1
                stats.written += 1
                write(record(lt, ts, new, len(new) + max(0, origlen - caplen)))
                continue
        elif res is not None:
            stats.failed += 1
        if not only_decrypted:
            stats.written += 1
            write(record(lt, ts, data[off:off + caplen], origlen))
    if out:
        w.out.write(b"".join(out))


def _inner_needs_decoder(nh: int, payload: bytes) -> bool:
    """Whether the keyed decoder, decoding what ESP carried, could reach the crypto or the
    reassembler: anything but plain TCP, ICMP or UDP (not to 500 / 4500) in IPv4 without
    options or fragments (tunnel mode), or TCP / ICMP / such UDP itself (transport mode)."""
    if nh == IPPROTO_IPIP:
        if len(payload) < 28 or payload[0] != 0x45 or (payload[6] & 0x3F) or payload[7]:
            return True
        proto, p = payload[9], 20
    elif nh == IPPROTO_IPV6:
        return True
    else:
        proto, p = nh, 0
    if proto == 6 or proto == 1 or proto == IPPROTO_NONE:
        return False
    if proto == 17 and len(payload) >= p + 4:
        ports = (payload[p] << 8 | payload[p + 1], payload[p + 2] << 8 | payload[p + 3])
        return 500 in ports or 4500 in ports
    return True


def _inner(dec, nh, payload, data, off, addrs, iplen, ts, frame_no, spi) -> None:
    """What KeyedDecoder.transport does with a decrypted packet (see _fast_block)."""
    spi_text = f"0x{spi:08x}"
    if nh == IPPROTO_IPIP or nh == IPPROTO_IPV6:
        dec.ip_any(payload, 0, len(payload), ts, frame_no, 1, spi_text)
    elif nh != IPPROTO_NONE:
        dec._ip = (data, off + 14, off + 14 + iplen, 4)
        dec.transport(nh, payload, 0, len(payload), bytes(addrs), 20 + len(payload), ts, frame_no, 1, spi_text, 0)
