"""Streaming, constant-memory reader of capture files (classic pcap and pcapng).

The reader hands out :class:`Block` objects: one ``bytes`` buffer plus
parallel lists (offset, captured length, wire length, timestamp, link type,
frame number) for every record in it, so the analysis loop can classify
packets by fixed offsets without building an object per packet.

Formats: classic pcap (both byte orders, microsecond / nanosecond, the
"modified" Kuznetzov variant with 24-byte record headers), pcapng (several
sections and interfaces, EPB / SPB / obsolete PB), either one gzip-compressed
(detected by content; multi-member).  Input may be a path, ``"-"`` (standard
input) or any binary stream; the format is found by reading and keeping the
first bytes, never by seeking, so pipes work.

How it stays fast: the file is read in ``block_bytes`` chunks and each chunk
*is* ``Block.data`` (no copy); record headers stay in the buffer between the
packets.  A record that straddles two reads is completed with an exact-size
read and handed out alone in a small Block of its own, so the next chunk
starts on a record boundary again.  The classic-pcap walk does one
``unpack_from`` and four list appends per record and no per-record checks:
the end of the buffer is found by the ``struct.error`` it raises.

Malformed input never raises out of iteration: it becomes a ``bad`` entry (a
frame that is counted but not delivered) or a line in ``warnings``.  Only an
input that is not a capture at all raises :class:`CaptureError`, from
:func:`open_capture`.
"""
from __future__ import annotations

import os
import stat
import struct
import sys
import zlib
from dataclasses import dataclass
from functools import cached_property
from typing import BinaryIO, Iterator

import numpy as np

try:  # the record walk in C (ipsecpcap/_walk.c), built with the package where a compiler was found
    from . import _walk as _cwalk
except ImportError:  # pragma: no cover - depends on the build
    _cwalk = None

__all__ = ["Block", "CaptureError", "CaptureReader", "open_capture"]

# Largest captured length / block length we accept.  Nothing writes records
# this big (Wireshark's largest per-link-type maximum is 128 MiB, for D-Bus);
# a larger value means the framing is corrupt and we cannot resynchronise.
MAX_RECORD = 256 << 20

# gzip-compressed captures are decompressed by a thread ahead of the walk (_Inflating); the
# tests turn it off to compare
INFLATE_AHEAD = True

# integers below this are exact doubles (IEEE 754 binary64 has a 53-bit significand)
EXACT = 1 << 53

_GZIP_MAGIC = b"\x1f\x8b"
_PCAPNG_SHB = 0x0A0D0D0A  # palindromic, reads the same in both byte orders
_BOM_LE = b"\x4d\x3c\x2b\x1a"  # pcapng byte-order magic 0x1A2B3C4D, little-endian
_BOM_BE = b"\x1a\x2b\x3c\x4d"

# classic pcap magic (as read little-endian) -> (byte order, divisor, record header size)
# https://www.ietf.org/archive/id/draft-ietf-opsawg-pcap-04.html, section 4
_PCAP_MAGICS = {
    0xA1B2C3D4: ("<", 1e6, 16),   # microseconds, little-endian file
    0xD4C3B2A1: (">", 1e6, 16),   # microseconds, big-endian file
    0xA1B23C4D: ("<", 1e9, 16),   # nanoseconds
    0x4D3CB2A1: (">", 1e9, 16),
    0xA1B2CD34: ("<", 1e6, 24),   # "modified" (Kuznetzov) pcap: +ifindex, protocol, pkt_type, pad
    0x34CDB2A1: (">", 1e6, 24),
}

# pcapng block types (draft-ietf-opsawg-pcapng, section 11.1)
_EPB, _SPB, _PB, _IDB = 6, 3, 2, 1

_ROW16 = np.arange(16, dtype=np.int64)  # the first 16 bytes of a classic pcap record header


class CaptureError(Exception):
    """The input is not a readable capture at all (one-line message naming the file)."""


@dataclass(frozen=True, slots=True)
class Block:
    """A run of records sharing one buffer.

    Record ``i`` is ``data[offsets[i]:offsets[i] + caplens[i]]``; ``data`` is
    the raw read, so record headers sit between the packets.  ``frames`` are
    1-based and count every packet record of the file (as Wireshark does),
    including the ones listed in ``bad`` (``truncated``, ``bad_length``,
    ``bad_header``) instead of being delivered, so the frame numbers of one
    block need not be contiguous; across blocks they only increase.  A block
    may be small (a record that straddled two reads comes alone) or deliver
    nothing but ``bad`` entries.  A pcapng Simple Packet Block has no
    timestamp: its ``ts`` is 0.0, the epoch, as Wireshark shows it.
    """

    data: bytes
    offsets: list[int]
    caplens: list[int]
    origlens: list[int]
    ts: list[float]
    linktypes: list[int] | int
    frames: list[int]
    bad: list[tuple[int, str, str]]
    # the same offsets, caplens and ts as numpy arrays (int64, int64, float64), when the
    # reader made them anyway (classic pcap); the vectorised fast path uses them
    arrays: tuple | None = None

    def packet(self, i: int) -> bytes:
        """The captured bytes of record ``i`` (a copy; the hot loop should index ``data``)."""
        o = self.offsets[i]
        return self.data[o:o + self.caplens[i]]

    def linktype(self, i: int) -> int:
        lt = self.linktypes
        return lt if isinstance(lt, int) else lt[i]

    def span(self) -> tuple[float, float] | None:
        """(earliest, latest) timestamp of the block's records, None if it has none.
        A pcapng Simple Packet Block has no timestamp: its 0.0 says nothing."""
        ts = self.ts
        stamps = [t for t in ts if t] if ts and not ts[0] else ts
        return (min(stamps), max(stamps)) if stamps else None


class ArrayBlock(Block):
    """A :class:`Block` of classic-pcap records made from numpy arrays: the
    per-record lists are built on first use only (the vectorised fast path never
    asks for most of them; ``tolist`` of a million entries is not free)."""

    def __init__(self, data: bytes, linktype: int, first_frame: int, offs, caps, origs, ts):
        for name, value in (("data", data), ("linktypes", linktype), ("bad", []), ("arrays", (offs, caps, ts))):
            object.__setattr__(self, name, value)
        self.__dict__["first_frame"] = first_frame
        self.__dict__["_origs"] = origs

    @cached_property
    def offsets(self) -> list[int]:
        return self.arrays[0].tolist()

    @cached_property
    def caplens(self) -> list[int]:
        return self.arrays[1].tolist()

    @cached_property
    def origlens(self) -> list[int]:
        return self._origs.tolist()

    @cached_property
    def ts(self) -> list[float]:
        return self.arrays[2].tolist()

    @cached_property
    def frames(self) -> list[int]:
        return list(range(self.first_frame, self.first_frame + len(self.arrays[0])))

    def span(self) -> tuple[float, float] | None:
        ts = self.arrays[2]
        if not len(ts):
            return None
        if ts[0]:  # classic pcap has no timestamp-less records: a 0.0 here is the epoch
            return float(ts.min()), float(ts.max())
        return Block.span(self)

    def frame_array(self) -> np.ndarray:
        return np.arange(self.first_frame, self.first_frame + len(self.arrays[0]), dtype=np.int64)


def _bad_block(bad: list[tuple[int, str, str]], linktype: int | None) -> Block:
    """A Block that delivers no record, only frames that could not be delivered."""
    return Block(b"", [], [], [], [], [] if linktype is None else linktype, [], bad)


# --------------------------------------------------------------------- sources
class _PlainSource:
    """Reads from a binary stream; ``read(n)`` returns n bytes unless the input ends."""

    def __init__(self, stream, warnings: list[str]):
        self._read = stream.read
        self._warnings = warnings
        self.consumed = 0
        self._eof = False

    def read(self, n: int) -> bytes:
        if self._eof or n <= 0:
            return b""
        try:
            data = self._read(n)
            if data is None:
                data = b""
            if 0 < len(data) < n:  # a raw stream or a socket may return short reads
                parts = [data]
                got = len(data)
                while got < n:
                    more = self._read(n - got)
                    if not more:
                        break
                    parts.append(more)
                    got += len(more)
                data = b"".join(parts)
        except OSError as e:
            self._warnings.append(f"read error after {self.consumed} bytes: {e.strerror or e}")
            self._eof = True
            return b""
        if not isinstance(data, bytes):
            data = bytes(data)
        self.consumed += len(data)
        if len(data) < n:
            self._eof = True
        return data


def _salvage(d, data: bytes, limit: int) -> tuple[bytes, zlib.error | None]:
    """What the decompressor ``d`` gives of ``data`` (at most ``limit`` bytes) before it
    fails, and the error: the same input again, in ever smaller steps (64 KiB down to one
    byte), each retried from a copy of the state before it when it fails: every byte
    before the damage is delivered but the one whose step failed (zlib found the damage,
    e.g. a CRC that does not match, in the same call that produced it)."""
    out: list[bytes] = []
    got = 0
    for step in (1 << 16, 1 << 12, 1 << 8, 1 << 4, 1):
        while got < limit:
            saved = d.copy()
            try:
                piece = d.decompress(data, min(step, limit - got))
            except zlib.error as e:
                d, err = saved, e  # this step again, in smaller ones
                break
            out.append(piece)
            got += len(piece)
            data = d.unconsumed_tail
            if d.eof or not piece:
                return b"".join(out), None
        else:
            return b"".join(out), None
    return b"".join(out), err


class _GzipSource:
    """Decompresses a (multi-member) gzip stream incrementally with zlib.

    Our own loop rather than :mod:`gzip` so that a truncated or corrupt
    stream still delivers every byte decompressed before the damage (a
    forensic capture is often cut short) and the damage becomes a warning.
    """

    _IN_CHUNK = 1 << 20

    def __init__(self, raw: _PlainSource, prefix: bytes, warnings: list[str]):
        self._raw = raw
        self._in = prefix  # compressed bytes not yet given to zlib
        self._warnings = warnings
        self._d = zlib.decompressobj(31)  # 31: gzip wrapper, checks CRC32 and ISIZE
        self._fed = False  # the current member has received input
        self._members = 0
        self._out = 0
        self._eof = False

    @property
    def consumed(self) -> int:
        return self._raw.consumed

    def read(self, n: int) -> bytes:
        out: list[bytes] = []
        got = 0
        while got < n and not self._eof:
            if not self._in:
                self._in = self._raw.read(self._IN_CHUNK)
                if not self._in and self._fed:
                    # the input ended inside a member: first drain what zlib still holds
                    try:
                        chunk = self._d.decompress(b"", n - got)
                    except zlib.error:
                        chunk = b""
                    if chunk:
                        out.append(chunk)
                        got += len(chunk)
                    if self._d.eof:
                        self._next_member()
                        continue
                    if chunk:
                        continue
                    self._warnings.append(
                        f"gzip stream is truncated: member {self._members + 1} has no end "
                        f"({self._out + got} bytes decompressed)")
                if not self._in:
                    self._eof = True
                    break
            if not self._fed and self._members and not self._in.startswith(_GZIP_MAGIC[:len(self._in)]):
                self._trailing()
                break
            saved = self._d.copy()  # (32 KiB of window, once per piece of input: what a failed call lost)
            try:
                chunk = self._d.decompress(self._in, n - got)
            except zlib.error as e:
                # zlib gives nothing of a call that fails: with the default 4 MiB reads, a CRC
                # error at the end of a member lost every packet of the member's last 4 MiB
                chunk, err = _salvage(saved, self._in, n - got)
                if chunk:
                    out.append(chunk)
                    got += len(chunk)
                self._warnings.append(
                    f"gzip data is corrupt in member {self._members + 1} after "
                    f"{self._out + got} decompressed bytes: {err or e}")
                self._eof = True
                break
            self._fed = True
            if chunk:
                out.append(chunk)
                got += len(chunk)
            if self._d.eof:
                self._next_member()
            else:
                self._in = self._d.unconsumed_tail
        self._out += got
        return b"".join(out) if len(out) != 1 else out[0]

    def _next_member(self) -> None:
        """Member complete; the next one (if any) starts in unused_data (RFC 1952, section 2.2)."""
        self._in = self._d.unused_data
        self._d = zlib.decompressobj(31)
        self._fed = False
        self._members += 1

    def _trailing(self) -> None:
        """Non-gzip bytes after a complete member: zero padding is fine, anything else is noted."""
        self._eof = True
        data = self._in
        while data:
            if data.strip(b"\0"):
                self._warnings.append(
                    f"data after gzip member {self._members} is not gzip "
                    f"(starts {self._in[:8].hex(' ')}); ignored")
                return
            data = self._raw.read(self._IN_CHUNK)


# --------------------------------------------------------------------- formats
class _Pcap:
    """Classic pcap records (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcap-04.html)."""

    format = "pcap"

    def __init__(self, header: bytes, warnings: list[str]):
        order, divisor, hs = _PCAP_MAGICS[struct.unpack_from("<I", header)[0]]
        # file header, section 4: magic, major, minor, reserved1, reserved2, snaplen, linktype+FCS
        _, self.major, self.minor, _, _, self.snaplen, lt_field = struct.unpack_from(order + "IHHiiII", header)
        # section 4: LinkType is the low 16 bits; the upper bits hold the FCS length and flags
        # (libpcap keeps the FCS length there: LT_FCS_LENGTH_PRESENT / LT_FCS_LENGTH);
        # records with an FCS are delivered as recorded, FCS included.
        self.linktype = lt_field & 0xFFFF
        self._unpack = struct.Struct(order + ("IIII" if hs == 16 else "IIII8x")).unpack_from
        # the captured length only, from a whole record header (the walk's one unpack per record)
        self._caplen = struct.Struct(order + ("8xI4x" if hs == 16 else "8xI12x")).unpack_from
        self._u32x4 = np.dtype(order + "u4")
        self._hs = hs
        self._big = order == ">"
        self._divisor = divisor
        # the C walk unless IPSECPCAP_PUREWALK is set (tests compare both)
        self.use_c = _cwalk is not None and not os.environ.get("IPSECPCAP_PUREWALK")
        self._warnings = warnings
        self.frames = 0
        self.base = 0  # stream offset of the buffer being walked (set by the reader)
        self.header_size = hs  # bytes needed to learn a record's length

    def walk(self, buf: bytes, pos: int) -> tuple[Block | None, int, bool]:
        """Records that lie wholly in ``buf[pos:]``; returns (block, first unread position, fatal).

        The hot loop of the whole reader, and inherently sequential: where a
        record starts depends on the length of the one before.  It runs in C
        (:mod:`ipsecpcap._walk`, 100x faster) where the package was built with
        it, else in Python (:meth:`walk_py`); both give the same arrays.  No
        length check per record: a buffer never holds more than
        ``MAX_RECORD`` bytes, and a record whose packet runs past the end of
        the buffer is left for the caller (``unit_length`` judges it).
        """
        if self.use_c:
            cap = (len(buf) - pos) // self._hs + 1 if pos < len(buf) else 1
            offs, cl, ol = np.empty(cap, np.int64), np.empty(cap, np.int64), np.empty(cap, np.int64)
            ts = np.empty(cap, np.float64)
            n, pos = _cwalk.walk(buf, pos, self._hs, self._big, self._divisor, offs, cl, ol, ts)
            if not n:
                return None, pos, False
            offs, cl, ol, ts = offs[:n].copy(), cl[:n].copy(), ol[:n].copy(), ts[:n].copy()
        else:
            got = self.walk_py(buf, pos)
            if got[0] is None:
                return None, got[1], False
            (offs, cl, ol, ts), pos = got
        first = self.frames + 1
        self.frames += len(offs)
        return ArrayBlock(buf, self.linktype, first, offs, cl, ol, ts), pos, False

    def walk_py(self, buf: bytes, pos: int) -> tuple:
        """The walk in Python: ((offsets, caplens, origlens, ts) arrays, next position),
        or (None, position) when no whole record is left.

        The loop does the least it can -- one ``unpack_from`` of the captured
        length and one append per record -- and numpy then gathers every
        header field at once from the offsets found (a 16-byte row per
        record, viewed as four 32-bit integers in the file's byte order);
        the timestamps are the same floats (``sec + sub / div`` in IEEE
        double, as dpkt and the pcap spec compute them).  The struct.error
        at the end of the buffer stops the loop.
        """
        starts: list[int] = []
        a_start = starts.append
        caplen = self._caplen
        hs = self._hs
        try:
            while True:
                cl = caplen(buf, pos)[0]
                a_start(pos)
                pos += hs + cl
        except struct.error:
            pass
        if pos > len(buf):  # the last header fitted but its packet bytes did not
            pos = starts.pop()
        if not starts:
            return None, pos
        heads = np.array(starts, dtype=np.int64)
        rows = np.frombuffer(buf, dtype=np.uint8)[heads[:, None] + _ROW16]
        sec, sub, cl, ol = rows.view(self._u32x4).T
        ts = sec.astype(np.float64) + sub / self._divisor
        return (heads + hs, cl.astype(np.int64), ol.astype(np.int64), ts), pos

    def _bad_length(self, frame: int, caplen: int) -> tuple[int, str, str]:
        self._warnings.append(
            f"frame {frame}: impossible captured length {caplen} (> {MAX_RECORD}); "
            "cannot find the next record, stopped reading")
        return (frame, "bad_length", f"caplen {caplen} > {MAX_RECORD}")

    def unit_length(self, head: bytes) -> tuple[int | None, list]:
        """Total length of the record whose header is ``head``; (None, bad) when impossible."""
        caplen = self._unpack(head)[2]
        if caplen > MAX_RECORD:
            self.frames += 1
            return None, [self._bad_length(self.frames, caplen)]
        return self._hs + caplen, []

    def eof_in_header(self, n: int) -> list:
        self._warnings.append(f"file ends inside a record header: {n} bytes")
        return []

    def eof_in_unit(self, part: bytes, total: int) -> list:
        self.frames += 1
        have, caplen = len(part) - self._hs, total - self._hs
        self._warnings.append(
            f"file ends inside the data of frame {self.frames}: captured {have} of {caplen} bytes")
        return [(self.frames, "truncated", f"captured {have} of {caplen} bytes")]


class _Pcapng:
    """pcapng blocks (https://www.ietf.org/archive/id/draft-ietf-opsawg-pcapng-02.html)."""

    format = "pcapng"
    header_size = 12  # type, total length, and (for an SHB) the byte-order magic

    def __init__(self, warnings: list[str]):
        self._warnings = warnings
        self.frames = 0
        self.base = 0  # stream offset of the buffer being walked (for messages)
        self.sections = 0
        self._ifaces: list[tuple[int, int, int, int]] = []  # (linktype, units/s, tsoffset, snaplen)
        self._set_order("<")
        # runs of well-formed EPBs walked in C unless IPSECPCAP_PUREWALK is set (tests compare both)
        self.use_c = getattr(_cwalk, "walk_epb", None) is not None and not os.environ.get("IPSECPCAP_PUREWALK")

    def _set_order(self, e: str) -> None:
        self._e = e
        self._hdr = struct.Struct(e + "II").unpack_from
        self._epb = struct.Struct(e + "IIIIIII").unpack_from  # section 4.3
        self._pb = struct.Struct(e + "HHIIII").unpack_from  # appendix A (obsolete Packet Block), after type/len
        self._u32 = struct.Struct(e + "I").unpack_from

    def _block_len(self, buf: bytes, pos: int) -> int | None:
        """Block type/length at ``pos`` (adopting an SHB's byte order); None if the framing is broken."""
        btype, blen = self._hdr(buf, pos)
        if btype == _PCAPNG_SHB:  # section 4.1: the byte-order magic follows type and length
            bom = buf[pos + 8:pos + 12]
            if bom == _BOM_LE:
                self._set_order("<")
            elif bom == _BOM_BE:
                self._set_order(">")
            else:
                self._warnings.append(
                    f"section header at byte {self.base + pos} has a bad byte-order magic {bom.hex()}; "
                    "stopped reading")
                return None
            btype, blen = self._hdr(buf, pos)
        # section 3.1: total length counts type, length, body and trailing length, in 32-bit units
        if blen < 12 or blen & 3 or blen > MAX_RECORD or (btype == _PCAPNG_SHB and blen < 28):
            self._warnings.append(
                f"block of type 0x{btype:08x} at byte {self.base + pos} has an impossible total length "
                f"{blen}; stopped reading")
            return None
        return blen

    def walk(self, buf: bytes, pos: int) -> tuple[Block | None, int, bool]:
        """Blocks that lie wholly in ``buf[pos:]``; returns (block, first unread position, fatal).

        The inner loop takes well-formed Enhanced Packet Blocks of a known
        interface; everything else (other blocks, malformed EPBs, the end of
        the buffer) drops to :meth:`_slow` for one block.  Where the C module
        is built, :meth:`_walk_c` does the same with the inner loop in C.
        """
        if self.use_c:
            return self._walk_c(buf, pos)
        offsets: list[int] = []
        caplens: list[int] = []
        origlens: list[int] = []
        tss: list[float] = []
        lts: list[int] = []
        bad: list[tuple[int, str, str]] = []
        cols = (offsets, caplens, origlens, tss, lts, bad)
        a_off, a_cap, a_orig, a_ts, a_lt = offsets.append, caplens.append, origlens.append, tss.append, lts.append
        first = self.frames + 1
        end = len(buf)
        fatal = False
        while True:
            ifaces, epb, u32 = self._ifaces, self._epb, self._u32  # the slow path may change them
            nif = len(ifaces)
            try:
                while True:
                    # section 4.3: type, total length, interface id, ts high, ts low, caplen, origlen
                    btype, blen, ifid, hi, lo, cl, ol = epb(buf, pos)
                    if (btype != _EPB or ifid >= nif or cl > blen - 32 or blen > end - pos
                            or blen & 3 or u32(buf, pos + blen - 4)[0] != blen):
                        break
                    lt, units, tsoff, _ = ifaces[ifid]
                    a_off(pos + 28)
                    a_cap(cl)
                    a_orig(ol)
                    a_ts(((hi << 32) | lo) / units + tsoff)  # int / int: correctly rounded
                    a_lt(lt)
                    pos += blen
            except struct.error:  # fewer than 28 bytes left: maybe a short block, maybe nothing
                pass
            if end - pos < 12:
                break
            self.frames = first - 1 + len(offsets) + len(bad)
            nxt = self._slow(buf, pos, cols)
            if nxt <= pos:
                fatal = nxt < 0
                break
            pos = nxt
        n = len(offsets)
        self.frames = first - 1 + n + len(bad)
        if not n and not bad:
            return None, pos, fatal
        if bad:  # frames of this block that were not delivered leave gaps in the numbering
            skip = {b[0] for b in bad}
            frames = [f for f in range(first, self.frames + 1) if f not in skip]
        else:
            frames = list(range(first, first + n))
        linktypes: list[int] | int = lts[0] if lts and lts.count(lts[0]) == n else lts
        return Block(buf, offsets, caplens, origlens, tss, linktypes, frames, bad), pos, fatal

    def _walk_c(self, buf: bytes, pos: int) -> tuple[Block | None, int, bool]:
        """:meth:`walk` with its inner loop in C (``_walk.walk_epb``, which takes the same
        blocks): the same records, frame numbers and timestamp bits.  A block of records
        that all share one link type and skip no frame comes as an :class:`ArrayBlock`,
        as a classic pcap's do, for the vectorised fast path."""
        first = self.frames + 1
        end = len(buf)
        size = max(end - pos, 0) // 32 + 1
        offs, caps, origs, lts = (np.empty(size, np.int64) for _ in range(4))
        ts = np.empty(size, np.float64)
        stamps, ifids = np.empty(size, np.uint64), np.empty(size, np.int64)  # (scratch for the C walk)
        n = 0  # records so far
        one = ([], [], [], [], [], [])  # what _slow delivers: at most one record, or a bad frame
        bad = one[5]
        fatal = False
        while True:
            room = max(end - pos, 0) // 32 + 1
            if n + room > len(offs):  # (short non-EPB records used less room than an EPB's 32 bytes)
                grow = n + room + size
                offs, caps, origs, lts, ts = (np.resize(a, grow) for a in (offs, caps, origs, lts, ts))
                stamps, ifids = np.resize(stamps, grow), np.resize(ifids, grow)
            k, pos = _cwalk.walk_epb(buf, pos, self._e == ">", len(self._ifaces), offs[n:], caps[n:], origs[n:],
                                     stamps[n:], ifids[n:])
            if k:
                self._stamps(stamps[n:n + k], ifids[n:n + k], ts[n:n + k], lts[n:n + k])
                n += k
            if end - pos < 12:
                break
            self.frames = first - 1 + n + len(bad)
            nxt = self._slow(buf, pos, one)
            if one[0]:  # a record (an SPB, an obsolete PB, an EPB the C walk left): in file order
                offs[n], caps[n], origs[n], ts[n], lts[n] = (col.pop() for col in one[:5])
                n += 1
            if nxt <= pos:
                fatal = nxt < 0
                break
            pos = nxt
        self.frames = first - 1 + n + len(bad)
        if not n and not bad:
            return None, pos, fatal
        offs, caps, origs, ts, lts = offs[:n].copy(), caps[:n].copy(), origs[:n].copy(), ts[:n].copy(), lts[:n]
        uniform = n and bool((lts == lts[0]).all())
        if uniform and not bad:
            return ArrayBlock(buf, int(lts[0]), first, offs, caps, origs, ts), pos, fatal
        if bad:  # frames of this block that were not delivered leave gaps in the numbering
            skip = {b[0] for b in bad}
            frames = [f for f in range(first, self.frames + 1) if f not in skip]
        else:
            frames = list(range(first, first + n))
        linktypes = int(lts[0]) if uniform else lts.tolist()
        return Block(buf, offs.tolist(), caps.tolist(), origs.tolist(), ts.tolist(), linktypes, frames, bad), pos, fatal

    def _stamps(self, stamps: np.ndarray, ifids: np.ndarray, ts: np.ndarray, lts: np.ndarray) -> None:
        """Timestamps (into ``ts``) and link types (into ``lts``) of EPBs walked in C, from
        their 64-bit stamps and interface ids: ``stamp / units + tsoffset`` as Python
        computes it for one block (a correctly rounded int / int, then a float + int),
        which numpy gives bit for bit when the stamp, the units and the offset are exact
        doubles (below 2**53, e.g. microseconds since 1970); otherwise (nanoseconds) in
        Python, record by record."""
        ifaces = self._ifaces
        for i in (np.unique(ifids).tolist() if len(ifaces) > 1 else [0]):
            lt, units, tsoff, _ = ifaces[i]
            sel = slice(None) if len(ifaces) == 1 else ifids == i
            st = stamps[sel]
            lts[sel] = lt
            if units < EXACT and abs(tsoff) < EXACT and int(st.max()) < EXACT:
                ts[sel] = st.astype(np.float64) / float(units) + float(tsoff)
            else:
                ts[sel] = [x / units + tsoff for x in st.tolist()]

    def _slow(self, buf: bytes, pos: int, cols) -> int:
        """One block at ``pos``; returns the next position, ``pos`` if incomplete, -1 if fatal."""
        offsets, caplens, origlens, tss, lts, bad = cols
        blen = self._block_len(buf, pos)
        if blen is None:
            return -1
        if blen > len(buf) - pos:
            return pos  # completed by the caller with an exact-size read
        u32 = self._u32
        btype = u32(buf, pos)[0]
        trailer = u32(buf, pos + blen - 4)[0]
        if trailer != blen:
            self._warnings.append(
                f"block of type 0x{btype:08x} at byte {self.base + pos} has total length {blen} "
                f"but trailing length {trailer}; stopped reading")
            return -1
        ifaces = self._ifaces
        if btype in (_EPB, _PB, _SPB):
            frame = self.frames + 1
            rec = None
            if btype == _SPB:  # section 4.4: origlen, data; interface 0, no timestamp
                if blen < 16:
                    bad.append((frame, "bad_length", f"simple packet block of {blen} bytes"))
                elif not ifaces:
                    bad.append((frame, "bad_header", "simple packet block before any interface description"))
                else:
                    lt, _, _, snap = ifaces[0]
                    ol = u32(buf, pos + 8)[0]
                    cl = min(ol, blen - 16, snap) if snap else min(ol, blen - 16)
                    rec = (pos + 12, cl, ol, 0.0, lt)  # no timestamp: the epoch, as Wireshark shows it
            elif blen < 32:
                bad.append((frame, "bad_length", f"packet block (type {btype}) of {blen} bytes"))
            else:
                if btype == _EPB:  # section 4.3
                    _, _, ifid, hi, lo, cl, ol = self._epb(buf, pos)
                else:  # appendix A, obsolete Packet Block: 16-bit interface id, drops count
                    ifid, _, hi, lo, cl, ol = self._pb(buf, pos + 8)
                if ifid >= len(ifaces):
                    bad.append((frame, "bad_header", f"interface {ifid} not defined ({len(ifaces)} in section)"))
                elif cl > blen - 32:
                    bad.append((frame, "bad_length", f"caplen {cl} exceeds the block's room of {blen - 32}"))
                else:
                    lt, units, tsoff, _ = ifaces[ifid]
                    rec = (pos + 28, cl, ol, ((hi << 32) | lo) / units + tsoff, lt)
            if rec is not None:
                for col, v in zip(cols, rec):
                    col.append(v)
        elif btype == _IDB:
            self._interface(buf, pos, blen)
        elif btype == _PCAPNG_SHB:
            self._section(buf, pos, blen)
        # ISB (5), NRB (4), DSB (10), custom and unknown blocks are not frames: skipped by length
        return pos + blen

    def _section(self, buf: bytes, pos: int, blen: int) -> None:
        """Section Header Block (section 4.1): a new section forgets the interfaces."""
        self.sections += 1
        major, minor = struct.unpack_from(self._e + "HH", buf, pos + 12)
        if major != 1:
            self._warnings.append(f"section {self.sections}: pcapng version {major}.{minor} (expected 1.x)")
        self._ifaces = []

    def _interface(self, buf: bytes, pos: int, blen: int) -> None:
        """Interface Description Block (section 4.2) with if_tsresol (9) and if_tsoffset (14)."""
        e = self._e
        if blen < 20:
            self._warnings.append(f"interface description block of {blen} bytes; interface {len(self._ifaces)} "
                                  "assumed Ethernet")
            self._ifaces.append((1, 1000000, 0, 0))
            return
        lt, _, snap = struct.unpack_from(e + "HHI", buf, pos + 8)
        units, tsoff = 1000000, 0
        p, end = pos + 16, pos + blen - 4
        while p + 4 <= end:  # options (section 3.5): code, length, value padded to 32 bits
            code, olen = struct.unpack_from(e + "HH", buf, p)
            if code == 0:
                break
            v = p + 4
            if v + olen > end:
                self._warnings.append(f"interface {len(self._ifaces)}: option {code} runs past its block")
                break
            if code == 9 and olen >= 1:  # if_tsresol: 10^-n, or 2^-n when the top bit is set
                r = buf[v]
                units = 1 << (r & 0x7F) if r & 0x80 else 10 ** r
            elif code == 14 and olen >= 8:  # if_tsoffset: seconds added to every timestamp
                tsoff = struct.unpack_from(e + "q", buf, v)[0]
            p = v + ((olen + 3) & ~3)
        self._ifaces.append((lt, units, tsoff, snap))

    def unit_length(self, head: bytes) -> tuple[int | None, list]:
        return self._block_len(head, 0), []

    def eof_in_header(self, n: int) -> list:
        self._warnings.append(f"file ends inside a block header: {n} bytes")
        return []

    def eof_in_unit(self, part: bytes, total: int) -> list:
        btype = self._hdr(part, 0)[0]
        self._warnings.append(f"file ends inside a block of type 0x{btype:08x}: {len(part)} of {total} bytes")
        if btype in (_EPB, _PB) and len(part) >= 28:
            cl = self._u32(part, 20)[0]
        elif btype == _SPB and len(part) >= 12:
            cl = min(self._u32(part, 8)[0], total - 16)
        else:
            return []
        self.frames += 1
        hs = 12 if btype == _SPB else 28
        return [(self.frames, "truncated", f"captured {len(part) - hs} of {cl} bytes")]


# ---------------------------------------------------------------------- reader
class CaptureReader:
    """Iterable of :class:`Block`; use :func:`open_capture` to make one."""

    def __init__(self, stream, name: str, size: int | None, close_stream: bool, block_bytes: int):
        self.name = name
        self.size = size
        self.warnings: list[str] = []
        self.compressed = False
        self._stream = stream
        self._close_stream = close_stream
        # at most MAX_RECORD, so a record that fits in one read never needs a length check
        self._block_bytes = min(max(int(block_bytes), 64), MAX_RECORD)
        self._gen: Iterator[Block] | None = None
        try:
            self._src: _PlainSource | _GzipSource = _PlainSource(stream, self.warnings)
            self._start()
        except BaseException:
            self.close()
            raise

    def _fail(self, why: str) -> CaptureError:
        return CaptureError(f"{self.name}: {why}")

    def _start(self) -> None:
        """Detect the format from the first bytes (read and kept, never seeked)."""
        magic = self._src.read(4)
        if not magic:
            raise self._fail(self.warnings[-1] if self.warnings else "empty file, not a capture")
        if magic.startswith(_GZIP_MAGIC):
            self.compressed = True
            gz = _GzipSource(self._src, magic, self.warnings)
            self._src = _Inflating(gz, self.warnings) if INFLATE_AHEAD else gz
            magic = self._src.read(4)
            if len(magic) < 4:
                why = self.warnings[-1] if self.warnings else f"gzip content is {len(magic)} bytes, not a capture"
                raise self._fail(why)
        if len(magic) < 4:
            raise self._fail(f"{len(magic)} bytes, too short to be a capture")
        m = struct.unpack("<I", magic)[0]
        if m in _PCAP_MAGICS:
            head = magic + self._src.read(20)
            if len(head) < 24:
                raise self._fail(f"file ends inside the pcap file header ({len(head)} of 24 bytes)")
            self._fmt: _Pcap | _Pcapng = _Pcap(head, self.warnings)
            self._first = b""
            self._head_len = 24
        elif m == _PCAPNG_SHB:
            head = magic + self._src.read(8)
            if len(head) < 12:
                raise self._fail(f"file ends inside the pcapng section header ({len(head)} bytes)")
            fmt = _Pcapng(self.warnings)
            blen = fmt.unit_length(head)[0]
            if blen is None:
                raise self._fail(f"not a pcapng file: {self.warnings.pop().removesuffix('; stopped reading')}")
            head += self._src.read(blen - 12)
            if len(head) < blen:
                raise self._fail(f"file ends inside the pcapng section header ({len(head)} of {blen} bytes)")
            self._fmt = fmt
            self._head_len = 0
            self._first = head  # walked first, so the SHB sets the section's state like any later one
        else:
            what = "gzip content" if self.compressed else "file"
            raise self._fail(f"{what} starts with {magic.hex()}: not a pcap or pcapng capture")
        self.format = self._fmt.format

    @property
    def frames(self) -> int:
        return self._fmt.frames

    @property
    def bytes_read(self) -> int:
        return self._src.consumed

    def __iter__(self) -> Iterator[Block]:
        if self._gen is None:
            self._gen = self._blocks()
        return self._gen

    def _blocks(self) -> Iterator[Block]:
        fmt = self._fmt
        read = self._src.read
        bs = self._block_bytes
        walk = fmt.walk
        buf, self._first = self._first, b""
        fmt.base = self._head_len  # capture-stream offset of buf[0]
        pos = 0
        while True:
            if pos >= len(buf):
                fmt.base += len(buf)
                buf = read(bs)
                pos = 0
                if not buf:
                    return
            block, pos, fatal = walk(buf, pos)
            if block is not None:
                yield block
            if fatal:
                return
            if pos >= len(buf):
                continue
            # A record straddles the end of this read: complete it with exact-size
            # reads and hand it out alone, so the next read starts on a boundary.
            unit = buf[pos:]
            fmt.base += pos
            buf = b""
            pos = 0
            hs = fmt.header_size
            if len(unit) < hs:
                unit += read(hs - len(unit))
                if len(unit) < hs:
                    fmt.eof_in_header(len(unit))
                    return
            total, bad = fmt.unit_length(unit)
            if total is None:
                if bad:
                    yield _bad_block(bad, getattr(fmt, "linktype", None))
                return
            if len(unit) < total:
                unit += read(total - len(unit))
                if len(unit) < total:
                    bad = fmt.eof_in_unit(unit, total)
                    if bad:
                        yield _bad_block(bad, getattr(fmt, "linktype", None))
                    return
            buf = unit

    def close(self) -> None:
        if self._gen is not None:
            self._gen.close()
        if isinstance(getattr(self, "_src", None), _Inflating):
            self._src.stop()
        if self._close_stream and self._stream is not None:
            self._stream.close()
        elif isinstance(self._stream, _ReadAhead):
            self._stream.stop()  # (standard input stays open)
        self._stream = None

    def __enter__(self) -> "CaptureReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def open_capture(path: str | os.PathLike | BinaryIO, *, block_bytes: int = 4 << 20,
                 name: str | None = None) -> CaptureReader:
    """Open a capture for streaming.  ``"-"`` means standard input.  ``name``
    overrides the name messages use (e.g. ``"-"`` for a duplicate of standard
    input passed as a stream).

    Raises :class:`CaptureError` when the input cannot be opened or is not a
    pcap / pcapng capture (possibly gzip-compressed) at all.
    """
    if isinstance(path, (str, os.PathLike)):
        name = os.fspath(path)
        if isinstance(name, bytes):
            name = os.fsdecode(name)
        if name == "-":
            stream, close = sys.stdin.buffer, False
        else:
            try:
                stream, close = open(name, "rb"), True
            except OSError as e:
                raise CaptureError(f"{name}: cannot open: {e.strerror or e}") from e
    else:
        stream, close = path, False
        if hasattr(stream, "buffer") and not hasattr(stream, "readinto"):
            stream = stream.buffer  # a text stream such as sys.stdin
        given = name
        name = getattr(stream, "name", None)
        name = given if given is not None else (name if isinstance(name, str) else "<stream>")
    size = None
    try:
        fd = stream.fileno()
        st = os.fstat(fd)
        if stat.S_ISREG(st.st_mode):
            size = st.st_size
        elif stat.S_ISFIFO(st.st_mode):
            _widen_pipe(fd)
            stream = _ReadAhead(stream)
    except (AttributeError, OSError, ValueError):
        pass
    return CaptureReader(stream, name, size, close, block_bytes)


class _ReadAhead:
    """A pipe read by a thread of its own, 1 MiB at a time and up to 4 MiB ahead of the
    analysis, for ``read(n)``.

    Reading 4 MiB at once out of a 1 MiB pipe, the analysis waited at every block for the
    writer to refill the pipe while nothing else ran: `cat 1M | ipsecpcap analyze -` took
    1.78-2.25 s against 1.42-1.65 s from the file (medians 2.05 and 1.55, six runs each,
    interleaved); read ahead, 1.52-1.85 s.  The thread spends its time in the read call,
    which lets go of the interpreter lock.  Regular files are not read ahead: on the 5M
    capture the read took the same wall time either way (3.8-4.5 s) and 0.7-1.0 s more
    CPU with the thread, which a second process (``--jobs 2``) needs.  A read error is
    raised where the reading would have met it, after the data before it."""

    CHUNK = 1 << 20
    DEPTH = 4  # (8 was no quicker, from a file or a pipe)

    def __init__(self, stream):
        import queue
        import threading

        self._stream = stream
        self._chunks: queue.Queue = queue.Queue(self.DEPTH)
        self._buf = b""
        self._pos = 0
        self._done = False  # the end, or an error, was taken from the queue
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="ipsecpcap-read-ahead", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        read, put, chunk = self._stream.read, self._chunks.put, self.CHUNK
        try:
            while not self._closed:
                data = read(chunk)
                put(data if data else b"")
                if not data:
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the reading thread, which raises it
            put(e)

    def fileno(self) -> int:
        return self._stream.fileno()

    def read(self, n: int) -> bytes:
        out = []
        while n > 0:
            left = len(self._buf) - self._pos
            if not left:
                if self._done:
                    break
                got = self._chunks.get()
                if isinstance(got, BaseException):
                    self._done = True
                    raise got
                if not got:
                    self._done = True
                    break
                self._buf, self._pos = got, 0
                continue
            take = left if left <= n else n
            out.append(self._buf if take == len(self._buf) else self._buf[self._pos:self._pos + take])
            self._pos += take
            n -= take
        return out[0] if len(out) == 1 else b"".join(out)

    def stop(self) -> None:
        """Stop reading ahead: the thread ends after the read it is in (a pipe's writer may
        keep it waiting: it is a daemon thread, and it is not waited for)."""
        import queue

        self._closed = True
        try:
            self._chunks.get_nowait()  # room for a thread waiting to put, which then sees _closed
        except queue.Empty:
            pass

    def close(self) -> None:
        self.stop()
        self._stream.close()


class _Inflating(_ReadAhead):
    """A gzip-compressed capture decompressed by a thread of its own, up to 4 MiB ahead of
    the walk: zlib lets go of the interpreter lock while it inflates, so inflating and the
    analysis overlap.

    What the source warns of (a truncated or corrupt stream, trailing junk, a read error)
    comes with the end of its data, so it is held back and given to the reader with the
    first read that comes short: the read in which the source, read in the reader's own
    thread, would have said it.  A reader that stops early (a broken record) never gets
    there, as it never read that far before."""

    def __init__(self, src: _GzipSource, warnings: list[str]):
        self._out = warnings
        self._held: list[str] = []
        src._warnings = src._raw._warnings = self._held
        self._src = src
        super().__init__(src)

    @property
    def consumed(self) -> int:
        return self._src.consumed

    def read(self, n: int) -> bytes:
        data = super().read(n)
        if len(data) < n and self._held:  # (short: the end, taken from the queue after the last warning)
            self._out.extend(self._held)
            self._held.clear()
        return data

    def close(self) -> None:
        self.stop()


def _widen_pipe(fd: int) -> None:
    """Give a pipe we read from the largest buffer an unprivileged process may set (Linux:
    /proc/sys/fs/pipe-max-size, 1 MiB by default; 64 KiB otherwise).  With 64 KiB the
    writer and this reader take turns every 64 KiB: `cat 1M-packet capture | ipsecpcap
    analyze -` took 2.9-3.0 s, against 2.2-2.7 s with 1 MiB (and 1.7-2.1 s from the file)."""
    import fcntl

    setsize = getattr(fcntl, "F_SETPIPE_SZ", None)
    if setsize is None:  # not Linux
        return
    try:
        with open("/proc/sys/fs/pipe-max-size") as f:
            size = int(f.read())
        fcntl.fcntl(fd, setsize, min(size, 1 << 20))
    except (OSError, ValueError):
        pass  # as it is
