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
from itertools import count

import numpy as np
from cryptography.exceptions import InvalidTag

from .decode import (IPPROTO_AH, IPPROTO_FRAGMENT, IPPROTO_IPIP, IPPROTO_IPV6, IPPROTO_NONE, IPV6_EXT_SIMPLE,
                     LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2, LINKTYPE_LOOP, LINKTYPE_NULL,
                     KeyedDecoder)
from .errors import InputError
from .output import output_stream
from .reader import CaptureError, open_capture
from .sacrypto import SaCrypto
from .vector import _be16, _be32, classify, gather


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


_REC_HEAD = struct.Struct("<IIII")
_REC = _REC_HEAD.pack


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

    @staticmethod
    def _epb(iface: int, usec: int, data: bytes, origlen: int) -> bytes:
        """A pcapng Enhanced Packet Block, microsecond timestamp."""
        pad = (-len(data)) % 4
        total = 32 + len(data) + pad
        return (struct.pack("<IIIIIII", 6, total, iface, usec >> 32, usec & 0xFFFFFFFF,
                            len(data), max(origlen, len(data))) + data + b"\0" * pad
                + struct.pack("<I", total))

    def classic_records(self, buf, lt: int = LINKTYPE_ETHERNET) -> None:
        """Write the classic pcap records (of link type ``lt``) in ``buf``: as they
        are, or re-framed as pcapng packet blocks."""
        if not self.pcapng:
            self.out.write(buf)
            return
        recs, pos, unpack, iface = [], 0, _REC_HEAD.unpack_from, self.ifaces[lt]
        while pos < len(buf):
            sec, us, caplen, origlen = unpack(buf, pos)
            recs.append(self._epb(iface, sec * 1_000_000 + us, bytes(buf[pos + 16:pos + 16 + caplen]), origlen))
            pos += 16 + caplen
        self.out.write(b"".join(recs))

    def record(self, lt: int, ts: float, data: bytes, origlen: int) -> bytes:
        """The bytes of one record (header and data)."""
        usec = int(round(ts * 1_000_000))
        if self.pcapng:
            return self._epb(self.ifaces[lt], usec, data, origlen)
        sec, us = divmod(usec, 1_000_000)
        return _REC(sec, us, len(data), max(origlen, len(data))) + data


def _linktypes(paths) -> list[int]:
    """The link types of the captures' blocks, in order of appearance.  A classic pcap
    file has one, for every block: its first block tells (no second read of the file)."""
    seen: list[int] = []
    for path in paths:
        with open_capture(path) as reader:
            for block in reader:
                lts = [block.linktypes] if isinstance(block.linktypes, int) else block.linktypes
                for lt in lts:
                    if lt not in seen:
                        seen.append(lt)
                if reader.format == "pcap":
                    break
    return seen or [LINKTYPE_ETHERNET]


def _nothing(*args, **kwargs) -> None:
    return None


class _NoAnalysis:
    """The keyed decoder's sink while a decrypted capture is written: what it finds
    (SAs, flows, IKE messages) is not kept, only what it does with the keys matters."""

    def __getattr__(self, name):
        return _nothing


class _DecryptDecoder(KeyedDecoder):
    """The keyed decoder with the sink above: IKE messages are not parsed."""

    __slots__ = ()
    parse_ike = staticmethod(_nothing)


# blocks of fewer frames go frame by frame: numpy's fixed cost per block is more than theirs (the
# reader hands out a record that straddles two chunks alone, in a block of its own)
_FEW = 16


def decrypt_captures(paths: list, crypto: SaCrypto, out_path: str, *, only_decrypted: bool = False) -> DecryptStats:
    """Write the decrypted capture of ``paths`` to ``out_path``.

    Blocks of Ethernet records go the fast way (:meth:`FastDecrypt.block`): the ESP
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
                dec = _DecryptDecoder(_NoAnalysis(), crypto)
                fd = FastDecrypt(crypto, dec, stats, only_decrypted)
                with open_capture(path) as reader:
                    for block in reader:
                        if fast and block.linktypes == LINKTYPE_ETHERNET and len(
                                block.offsets if block.arrays is None else block.arrays[0]) >= _FEW:
                            records = fd.block(block)
                            if records is not None:
                                w.classic_records(records)
                                records.release()
                                continue
                        data = block.data
                        for i, (off, caplen, origlen, ts) in enumerate(
                                zip(block.offsets, block.caplens, block.origlens, block.ts)):
                            lt = block.linktypes if isinstance(block.linktypes, int) else block.linktypes[i]
                            stats.frames += 1
                            rec = _one_frame(dec, lt, data, off, caplen, origlen, ts, block.frames[i], stats,
                                             only_decrypted, w.record)
                            if rec is not None:
                                out.write(rec)
    except CaptureError as e:
        raise InputError(str(e)) from None
    except FileNotFoundError as e:
        raise InputError(f"{e.filename}: no such file") from None
    return stats


def _one_frame(dec, lt, data, off, caplen, origlen, ts, frame_no, stats, only_decrypted, record) -> bytes | None:
    """One frame through the keyed decoder: its record (``record(lt, ts, data,
    origlen)``), decrypted or as it was, or None when it is not written.  The caller
    counts the frame in ``stats.frames``."""
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
        return record(lt, ts, new, len(new) + max(0, origlen - caplen))
    if not only_decrypted:
        stats.written += 1
        return record(lt, ts, frame, origlen)
    return None


def _classic_record(lt: int, ts: float, data: bytes, origlen: int) -> bytes:
    """A classic pcap record, microsecond timestamps (what _Writer.record writes for pcap)."""
    usec = int(round(ts * 1_000_000))
    sec, us = divmod(usec, 1_000_000)
    return _REC(sec, us, len(data), max(origlen, len(data))) + data


def _block_headers(block, caps):
    """The classic pcap record headers of a block's records -- (sec, usec, caplen,
    max(origlen, caplen)), what :meth:`_Writer.record` packs one by one -- as an (n, 4)
    little-endian array; None when a value does not fit in a header field (the
    frame-by-frame writer then decides)."""
    ts = block.arrays[2] if block.arrays is not None else np.array(block.ts, dtype=np.float64)
    origs = np.asarray(block.origlens, dtype=np.int64)
    usec = np.rint(ts * 1e6)  # = round(ts * 1_000_000): both round half to even
    if not (np.isfinite(usec).all() and (usec >= 0).all() and (usec < 0xFFFFFFFF * 1e6).all()
            and (caps <= 0xFFFF0000).all() and (origs >= 0).all() and (origs <= 0xFFFF0000).all()):
        return None
    heads = np.empty((len(caps), 4), dtype="<u4")
    heads[:, 0], heads[:, 1] = np.divmod(usec.astype(np.int64), 1_000_000)
    heads[:, 2], heads[:, 3] = caps, np.maximum(origs, caps)
    return heads


# kinds of frame in FastDecrypt.block
_COPY = 0  # copied as it is: the keyed decoder would only have counted it
_ESP = 2  # ESP the classifier found: opened inline (SaCrypto.inline), or SaCrypto.esp
_AH = 3  # AH (IPv4 without options) over TCP or UDP not to 500 / 4500: SaCrypto.ah, then copied
_DECODER = 4  # everything else: the keyed decoder, frame by frame
_AH_ESP = 5  # AH (IPv4 without options) over ESP: SaCrypto.ah, then the ESP as _ESP

_AR4 = np.arange(4, dtype=np.int64)
_AR8 = np.arange(8, dtype=np.int64)
_AR16 = np.arange(16, dtype=np.int64)
_AR24 = np.arange(24, dtype=np.int64)
_AR30 = np.arange(30, dtype=np.int64)
_MIX = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing: the SPI spread over 64 bits


def _never(*args) -> None:
    raise InvalidTag


# what FastDecrypt.ents holds for an SA it may no longer open itself (see _forget): never opens
_NO_SA = (None, None, _never, b"")


def _sa_hash(spis, hosts):
    """One 64-bit number per (SPI, addresses), to find SAs with searchsorted (verified after)."""
    with np.errstate(over="ignore"):
        return hosts.astype(np.uint64) ^ (spis.astype(np.uint64) * _MIX)


class FastDecrypt:
    """The fast way of decrypting blocks of Ethernet records (see :meth:`block`).

    Where the time went before it (500k frames of the benchmark's AES-GCM capture,
    377k of them ESP; cProfile, line_profiler and py-spy, one core): the AES-GCM
    decryption itself about 15 %; the per-packet layers around it (``SaCrypto.esp``
    -> ``EspCipher.open`` -> ``_plain_aead12`` -> ``_trailer`` -> an ``EspOpened``)
    about 45 %; building each output record (``round``, ``divmod``, a struct, two or
    three concatenations of the frame) about 25 %; the writes the rest.  Once those
    were gone, what was left per ESP frame was Python statements -- each one on the
    order of 100 ns on the 2-core benchmark machine -- and the AH frames, 2 % of the
    frames but 10 % of the time in the keyed decoder.  So each statement in the loop
    has to earn its place: the SA is found for the whole block with numpy, the record
    headers are written after the loop with numpy, the frames that are only copied
    are not visited, AH only calls ``SaCrypto.ah`` before what it carries, and
    (callgrind) no memoryview is made per packet -- slicing one costs more than
    copying a kilobyte of bytes.  Another trap: a list of memoryviews kept until the
    block is written costs as much as the decryption, so the records go into one
    buffer.  What is left (py-spy, the whole command): the loop about 60 %, half of it
    the ``AESGCM.decrypt`` calls; writing the output 10 %; start-up 10 %; reading 7 %.

    The session after that (issue 8) found the per-statement cost was not the whole
    story: the loop ran 3.3-3.9 us a frame where ``AESGCM.decrypt`` alone over the same
    packets takes 1.8 us an ESP packet.  So the packets of the SAs opened inline are now
    opened in a loop of their own that does nothing else (into one buffer kept from
    block to block), their trailers are checked with numpy, the other frames follow in
    frame order, and the common frames are counted per SA when something reads an SA's
    state (:class:`_Counted`).  Tried and dropped: ``AESGCM.decrypt_into`` straight into
    the output (cryptography 48: more instructions than ``decrypt`` and a copy, and
    positions must be known before the pad length is); keeping the plaintexts in a list
    until the block is done (fresh memory for every packet: slower than copying them
    into one buffer at once); writing each block from a thread while the next one is
    decrypted (alternating runs: the best wall time no better, more CPU -- as for the
    reader's read-ahead thread, reverted for the same reason).  On the benchmark VM the
    kernel's copy of the 300 MB output into fresh page-cache pages is a large share of
    the wall time: 0.07 s to 0.9 s of system time for the same bytes, depending on whether
    the pages the kernel hands out were freed a moment before or have to come back from
    the host.  What was taken for the cost of freeing the old output in ``os.replace``
    (0.15-0.25 s) was ext4 writing the new file out to disk inside a rename over an
    existing one: :func:`~ipsecpcap.output.output_stream` now exchanges the two names.

    Counted with callgrind (instructions, which the shared machine's noise does not
    touch), per AES-GCM packet (700 bytes on average): ``AESGCM.decrypt`` about 7,500, of
    which AES-GCM itself about 2,500 (the rest is the library's per-call work: a copy of
    the cipher context and its cleansing, the buffers, the result); slicing its three
    arguments and the call about 4,000 more; the rest of the loop of step 2 about 1,900;
    placing a record in step 4 (two memoryview slices and a copy) about 2,000 -- the
    same as a ``map`` into ``b"".join`` or ``os.writev`` of the slices, so neither was
    taken.  Those are the floors of this design in Python.
    """

    def __init__(self, crypto: SaCrypto, dec, stats: DecryptStats, only_decrypted: bool):
        self.crypto, self.dec, self.stats, self.only = crypto, dec, stats, only_decrypted
        self.wraps = crypto.wraps
        self._forget()
        self.buf = bytearray()  # the block's records
        self.plain = bytearray()  # the plaintexts of a block's common frames (see block)

    def _learn(self, spi: int, addrs: bytes, host: int) -> None:
        """After SaCrypto.esp opened a packet of this SA: may the loop open the next ones itself?"""
        if self.crypto.wraps != self.wraps:
            self._forget()
        if (spi, host) in self.inline:
            return
        sa = self.crypto.inline(spi, addrs)
        if sa is not None:
            self.inline[(spi, host)] = len(self.ents)
            self.ents.append(sa)
            self.sts.append(sa[0])
            self._over.append(32 if sa[1] == "aead" else 8 + sa[3] + sa[6])
            self._keys[0].append(spi)
            self._keys[1].append(host)
            self._index = None

    def _forget(self) -> None:
        """Start again with no SA opened here (and at first): some SA turned out to use
        extended sequence numbers, and no SA is opened here until SaCrypto.esp has said
        again that it may be.  The entries the running block holds become :data:`_NO_SA`."""
        self.wraps = self.crypto.wraps
        if getattr(self, "ents", None):
            self.ents[1:] = [_NO_SA] * (len(self.ents) - 1)
        # (SPI, source and destination as one 64-bit number) -> the SA's number in ents, where
        # SaCrypto.inline of it is; sts: its SaState; _over: the bytes of its ESP packets that are
        # not plaintext (SPI, sequence, IV, ICV); _keys: the SPIs and addresses in that order
        self.inline: dict = {}
        self.ents: list = [None]  # entry 0: "none"
        self.sts: list = [None]
        self._over: list = [0]
        self._keys: tuple = ([], [])
        self._index = None  # what _sa_numbers searches; None: to be rebuilt

    def _sa_numbers(self, spis, hosts):
        """The number in :attr:`ents` of each frame's SA, 0 when none is known."""
        if self._index is None:
            kspi, khost = (np.array(k, dtype=np.int64) for k in self._keys)
            h = _sa_hash(kspi, khost)
            order = np.argsort(h, kind="stable")
            self._index = (h[order], order + 1, kspi[order], khost[order], np.array(self._over, dtype=np.int64))
        kh, num, kspi, khost, self.over = self._index
        if not len(kh):
            return np.zeros(len(spis), dtype=np.int64)
        at = np.minimum(np.searchsorted(kh, _sa_hash(spis, hosts)), len(kh) - 1)
        return np.where((kspi[at] == spis) & (khost[at] == hosts), num[at], 0)

    @staticmethod
    def _open(sa, data, p, q):
        """The plaintext of the ESP packet data[p:q] of an SA allowed inline (trailer
        included), or None when it does not verify (EspCipher.inline_parts)."""
        if sa[1] == "aead":
            if q - p >= 34:  # SPI, sequence, IV, 2 bytes of ciphertext, 16-byte tag
                try:
                    return sa[2](sa[3] + data[p + 8:p + 16], data[p + 16:q], data[p:p + 8])
                except InvalidTag:
                    return None
        elif sa[1] == "cbc":
            _, _, update, iv_len, blk, min_ct, icv, inner, outer = sa
            n = q - p - 8 - iv_len - icv
            if n >= min_ct and not n % blk:
                h = inner.copy()
                h.update(data[p:q - icv])
                o = outer.copy()
                o.update(h.digest())
                if o.digest()[:icv] == data[q - icv:q]:
                    # IV | ciphertext through the SA's CBC context: the first block is garbage
                    return update(data[p + 8:q - icv])[iv_len:]
        return None

    def block(self, block):
        """The classic pcap records of a block of Ethernet records, decrypted, as a
        memoryview of this object's buffer (valid until the next call); None when
        the block must go frame by frame (a timestamp or length that does not fit a
        classic header field).  Four steps:

        1. **Classify** (numpy, the whole block): the frames
           (:func:`~ipsecpcap.vector.classify`), every record header
           (:func:`_block_headers`), each ESP frame's SA (:meth:`_sa_numbers`).
        2. **Open** the ESP frames of the SAs that :meth:`SaCrypto.inline` allowed
           when the block started, in one loop that does nothing else: AES-GCM /
           ChaCha20-Poly1305 ``decrypt``, or an HMAC and CBC (:meth:`_open`).  Opening
           touches no SA state, so it may run ahead of the frames in between.  The
           plaintexts are then checked at once (:func:`_common_tunnel`) for the common
           trailer: tunnel mode carrying IPv4 without options or fragments, TCP, ICMP
           or UDP not to port 500 / 4500.  Those frames are *common*.
        3. **Everything else, in frame order**, the way it went frame by frame: a tag
           or ICV that fails, another trailer, an SA not opened inline (not bound yet,
           extended sequence numbers) -- ``SaCrypto.esp`` (which opens the packet
           again) or ``EspCipher._trailer``, and :func:`rebuild` -- AH (untagged IPv4
           without options or fragments) verified with ``SaCrypto.ah`` as the keyed
           decoder would (over TCP, or UDP not to port 500 / 4500, the frame is then
           written as it is; over ESP the ESP is taken as above), and other frames
           through the keyed decoder.  Before each such frame the common frames
           before it are counted on their SAs (as ``SaCrypto.verified``), so that
           key binding, ESN inference and failures see exactly what they saw frame
           by frame.  When an SA turns out to use extended sequence numbers
           (``SaCrypto.wraps``), the common frames after that one are taken this way
           too, as the keyed decoder would take them.
        4. **Write** every record into one buffer that can hold them all (no record is
           longer than its input frame plus the 16-byte header), each at a place
           known from the lengths: the common plaintexts (trailer included: what
           follows overwrites it), the runs of frames that are only copied (when the
           block is classic pcap records one after the other whose headers are the
           ones written, the frames between two others are one slice of the input),
           the records of step 3; then with numpy the record header and Ethernet
           header (its type is already IPv4) in front of each common plaintext.

        Plain TCP / UDP, IKE and non-IP frames are copied: the keyed decoder would
        only have counted them.  What the keyed decoder would do next with a
        decrypted packet only feeds the analysis -- unless the inner packet can itself
        reach the crypto (ESP or AH inside, IP in IP, UDP to 500 / 4500, a fragment,
        IPv6), which then goes through the keyed decoder as it would have."""
        # ---- 1. classify
        rows, offs, caps, _ = gather(block)
        heads = _block_headers(block, caps)
        if heads is None:
            return None
        c = classify(rows, caps)
        udp = c.esp_udp
        esp = c.is_esp
        copy = c.is_flow | c.isolated
        data = block.data
        raw = np.frombuffer(data, dtype=np.uint8)
        # AH (Decoder.ah and .transport, KeyedDecoder.ah): that the decoder takes no further than
        # SaCrypto.ah -- cut short, or carrying TCP, or UDP not to 500 / 4500 (the UDP ports from the
        # input: beyond the rows) -- and AH over ESP, where the ESP follows
        ah = c.ip4 & (c.proto == 51) & (c.avail >= 12)
        ah_esp = np.zeros(len(caps), dtype=bool)
        ah_len = np.zeros(len(caps), dtype=np.int64)
        if ah.any():
            at = np.flatnonzero(ah)
            ah_len[at] = hlen = (rows[at, 35].astype(np.int64) + 2) * 4  # RFC 4302 2.2
            rest, nh = c.avail[at] - hlen, rows[at, 34]
            ports = raw.take(offs[at, None] + 34 + hlen[:, None] + _AR4, mode="clip")
            sport, dport = _be16(ports, 0), _be16(ports, 2)
            ike = (sport == 500) | (sport == 4500) | (dport == 500) | (dport == 4500)
            stop = (hlen < 12) | (rest < 0)  # Decoder.ah returns a category
            ah[at] = stop | (nh == 6) | ((nh == 17) & ((rest < 8) | ~ike)) | ((nh == 50) & (rest < 8))
            ah_esp[at] = ~stop & (nh == 50) & (rest >= 8)
        kind = np.where(esp, _ESP, np.where(copy, _COPY, np.where(ah, _AH, np.where(ah_esp, _AH_ESP, _DECODER))))
        # the ESP: after IPv4, after UDP for ESP in UDP, after AH; its SPI and sequence number (AH's for AH)
        p_from = offs + 34 + np.where(udp, 8, 0) + ah_len * ah_esp
        p_to = offs + 34 + np.where(udp, c.uend, c.avail)  # as the keyed decoder: in UDP, its length
        ah_spis, ah_seqs = _be32(rows, 38), _be32(rows, 42)
        spis = np.where(udp, _be32(rows, 42), np.where(ah, ah_spis, _be32(rows, 34)))
        seqs = np.where(udp, _be32(rows, 46), np.where(ah, ah_seqs, _be32(rows, 38)))
        if ah_esp.any():
            at = np.flatnonzero(ah_esp)
            head = raw.take(p_from[at, None] + _AR8, mode="clip")
            spis[at], seqs[at] = _be32(head, 0), _be32(head, 4)
        hosts = _be32(rows, 26) << 32 | _be32(rows, 30)
        if self.crypto.wraps != self.wraps:  # since the last block (one taken frame by frame: _FEW)
            self._forget()
        nums = np.zeros(len(caps), dtype=np.int64)
        at = np.flatnonzero(esp)
        nums[at] = self._sa_numbers(spis[at], hosts[at])
        only = self.only
        # the frames not copied in runs, and before each the run of copied bytes of the input
        runs = False
        if not only and offs[0] >= 16 and (offs[1:] == offs[:-1] + caps[:-1] + 16).all():
            runs = bool((raw[offs[copy, None] - 16 + _AR16] == heads[copy].view(np.uint8)).all())
        visit = np.flatnonzero(~copy if runs or only else np.ones(len(caps), dtype=bool))
        if runs:
            rec_end = offs + caps
            run_from = np.concatenate((offs[:1] - 16, rec_end[visit[:-1]]))[:len(visit)]
            run_len = offs[visit] - 16 - run_from
            tail = (int(rec_end[visit[-1]]) if len(visit) else int(offs[0]) - 16, int(rec_end[-1]))
        else:
            run_from = run_len = np.zeros(len(visit), dtype=np.int64)
            tail = (0, 0)

        # ---- 2. open the ESP of the SAs opened inline, nothing counted yet
        # the plaintexts (trailers included) one after the other in one buffer, kept from block to block
        cand = np.flatnonzero(nums)
        lens = np.maximum(p_to[cand] - p_from[cand] - self.over[nums[cand]], 0)  # (as long as the ciphertext)
        at = np.cumsum(lens) - lens
        if len(self.plain) < int(lens.sum()):
            self.plain = bytearray(int(lens.sum()) * 9 // 8)
        pv = memoryview(self.plain)
        ents = self.ents
        failed = []  # (as positions in cand)
        for j, n, p, q, x, y in zip(count(), nums[cand].tolist(), p_from[cand].tolist(), p_to[cand].tolist(),
                                    at.tolist(), (at + lens).tolist()):
            sa = ents[n]
            if sa[1] == "aead" and q - p >= 34:  # SPI, sequence, IV, 2 bytes of ciphertext, 16-byte tag
                try:
                    pv[x:y] = sa[2](sa[3] + data[p + 8:p + 16], data[p + 16:q], data[p:p + 8])
                except InvalidTag:
                    failed.append(j)
            else:
                pt = self._open(sa, data, p, q)
                if pt is None:
                    failed.append(j)
                else:
                    pv[x:y] = pt
        lens[failed] = 0  # 0: did not verify (a plaintext has its 2 trailer bytes at least)
        ok, ends = _common_tunnel(self.plain, at, lens)
        common = cand[ok]  # their frames; where their plaintext is, how long, where the inner packet ends
        c_at, c_len, c_end = at[ok], lens[ok], ends[ok]
        # the others' plaintexts, b"" when they did not verify
        rest = np.flatnonzero(~ok)
        opened = {i: bytes(pv[x:x + n]) for i, x, n in zip(cand[rest].tolist(), at[rest].tolist(), lens[rest].tolist())}

        # ---- 3. the other frames, in frame order
        crypto, stats = self.crypto, self.stats
        counted = _Counted(self.sts, nums[common], seqs[common])
        is_common = np.zeros(len(caps), dtype=bool)
        is_common[common] = True
        todo = visit[~is_common[visit]]
        rare_i, rare_rec = [], []  # their frames and records
        written = decrypted = 0  # records of step 3
        wraps = self.wraps
        while True:
            forgot = None
            for i, before, k, off, num, p, q, seq in zip(
                    todo.tolist(), np.searchsorted(common, todo).tolist(), kind[todo].tolist(), offs[todo].tolist(),
                    nums[todo].tolist(), p_from[todo].tolist(), p_to[todo].tolist(), seqs[todo].tolist()):
                counted.upto = before
                rec = None
                if k == _DECODER:
                    counted.flush()
                    rec = _one_frame(self.dec, LINKTYPE_ETHERNET, data, off, int(caps[i]), block.origlens[i],
                                     block.ts[i], block.frames[i], stats, only, _classic_record)
                elif k == _AH or k == _COPY:  # _COPY only when not in a run
                    if k == _AH:
                        crypto.ah(int(spis[i]), data[off + 26:off + 34], seq, data[off + 14:off + int(caps[i])], 20)
                    if not only:
                        rec = heads[i].tobytes() + data[off:off + int(caps[i])]
                        written += 1
                else:
                    if k == _AH_ESP:  # AH first, as KeyedDecoder.ah
                        crypto.ah(int(ah_spis[i]), data[off + 26:off + 34], int(ah_seqs[i]),
                                  data[off + 14:off + int(caps[i])], 20)
                    sa = ents[num] if num else self.ents[self.inline.get((int(spis[i]), int(hosts[i])), 0)]
                    pt = opened.get(i)
                    if pt is None:  # not opened in step 2
                        pt = None if sa is None else self._open(sa, data, p, q)
                    elif not pt or sa is _NO_SA:  # did not verify; or its SA may no longer be opened here
                        pt = None
                    rec = self._esp_record(block, i, off, p, q, seq, pt, sa, k, spis, hosts, heads, caps, udp,
                                           c.tot, ah_len, counted)
                    if rec is not None:
                        written += 1
                        decrypted += rec[1]
                        rec = rec[0]
                if rec is not None:
                    rare_i.append(i)
                    rare_rec.append(rec)
                if crypto.wraps != wraps:
                    forgot = i
                    break
            if forgot is None:
                break
            # an SA turned out to use extended sequence numbers: no SA is opened here from now on
            # (_forget), so the common frames after this one go the other way
            if crypto.wraps != self.wraps:
                self._forget()
            wraps = self.wraps
            keep = int(np.searchsorted(common, forgot, side="right"))
            opened.update((i, bytes(pv[x:x + n])) for i, x, n in zip(common[keep:].tolist(), c_at[keep:].tolist(),
                                                                   c_len[keep:].tolist()))
            is_common[common[keep:]] = False
            common, c_at, c_len, c_end = common[:keep], c_at[:keep], c_len[:keep], c_end[:keep]
            todo = visit[(visit > forgot) & ~is_common[visit]]
        counted.upto = len(common)
        counted.flush()

        # ---- 4. write: where each record goes, then the records
        rec_len = np.zeros(len(visit), dtype=np.int64)
        c_vis = np.searchsorted(visit, common)
        rec_len[c_vis] = 30 + c_end  # record header, Ethernet header, the inner packet
        r_at = np.searchsorted(visit, np.array(rare_i, dtype=np.int64))
        rec_len[r_at] = np.fromiter(map(len, rare_rec), dtype=np.int64, count=len(rare_rec))
        ends = np.cumsum(run_len + rec_len)
        rec_pos = ends - rec_len
        need = 16 * len(caps) + int(caps.sum())  # room for every record: none is longer than its frame plus a header
        if len(self.buf) < need:
            self.buf = bytearray(need + (need >> 3))
        # written through a memoryview: a bytearray's slice assignment copies any other value into a
        # temporary bytearray first (CPython 3.11 bytearray_ass_subscript), a memoryview's does not
        ov = memoryview(self.buf)
        # the inner packets of the common frames, each past its record's place for the two headers
        c_pos = rec_pos[c_vis]
        for x, y, a, b in zip((c_pos + 30).tolist(), (c_pos + 30 + c_end).tolist(), c_at.tolist(),
                              (c_at + c_end).tolist()):
            ov[x:y] = pv[a:b]
        has = np.flatnonzero(run_len)
        for a, g, n in zip((rec_pos[has] - run_len[has]).tolist(), run_from[has].tolist(), run_len[has].tolist()):
            ov[a:a + n] = data[g:g + n]
        for a, rec in zip(rec_pos[r_at].tolist(), rare_rec):
            ov[a:a + len(rec)] = rec
        pos = int(ends[-1]) if len(ends) else 0
        if tail[1] > tail[0]:
            ov[pos:pos + tail[1] - tail[0]] = data[tail[0]:tail[1]]
            pos += tail[1] - tail[0]
        if len(common):
            # the record header and the Ethernet header (its type is already IPv4) of each common frame
            length = c_end + 14
            h = heads[common]
            h[:, 3] = length + (h[:, 3].astype(np.int64) - h[:, 2])  # origlen - caplen stays
            h[:, 2] = length
            front = np.empty((len(common), 30), dtype=np.uint8)
            front[:, :16] = h.view(np.uint8)
            front[:, 16:] = rows[common, :14]
            np.frombuffer(ov, dtype=np.uint8)[c_pos[:, None] + _AR30] = front
        stats.frames += len(caps)
        stats.decrypted += decrypted + len(common)
        stats.written += written + len(common) + (int(copy.sum()) if runs else 0)
        return ov[:pos]

    def _esp_record(self, block, i, off, p, q, seq, pt, sa, k, spis, hosts, heads, caps, udp, tot, ah_len, counted):
        """Step 3 of :meth:`block` for an ESP frame: ``pt`` is its plaintext when the
        SA's key verified it inline (``sa``: what SaCrypto.inline gave), else None
        (``SaCrypto.esp`` decides).  Returns (the record, 1 if decrypted else 0), or
        None when nothing is written."""
        crypto, data = self.crypto, block.data
        if pt is not None:
            res = sa[0].cipher._trailer(pt)
            crypto.verified(sa[0], seq, res.status)
        else:
            if sa is not None:  # an SA opened inline: SaCrypto.esp reads its last_seq
                counted.flush()
            spi, addrs = int(spis[i]), data[off + 26:off + 34]
            res = crypto.esp(spi, addrs, seq, data[p:q])
            self._learn(spi, addrs, int(hosts[i]))
        new = None
        if res is not None and res.status == "ok":
            nh, payload = res.next_header, res.payload
            if _inner_needs_decoder(nh, payload):
                counted.flush()  # the keyed decoder may reach any SA
                # under AH the decoder is one level deeper; the outer header includes AH
                _inner(self.dec, nh, payload, data, off, data[off + 26:off + 34], int(tot[i]), block.ts[i],
                       block.frames[i], int(spis[i]), 2 if k == _AH_ESP else 1, 20 + int(ah_len[i]))
                if crypto.wraps != self.wraps:
                    self._forget()
            if nh == IPPROTO_IPIP or nh == IPPROTO_IPV6:
                # tunnel mode: the inner IP packet behind the Ethernet header, its ethertype set
                new = data[off:off + 12] + (b"\x08\x00" if payload and payload[0] >> 4 == 4 else b"\x86\xdd") \
                    + payload if payload else None
            else:
                new = rebuild(LINKTYPE_ETHERNET, data[off:off + int(caps[i])], 14, p - off, bool(udp[i]), nh,
                              payload)
        elif res is not None:
            self.stats.failed += 1
        if new is not None:
            return _classic_record(LINKTYPE_ETHERNET, block.ts[i], new,
                                   len(new) + int(heads[i, 3]) - int(caps[i])), 1
        if not self.only:
            cap = int(caps[i])
            return heads[i].tobytes() + data[off:off + cap], 0
        return None


class _Counted:
    """The common frames of a block (:meth:`FastDecrypt.block`, step 3) counted on their
    SAs as ``SaCrypto.verified`` counts them (one more decrypted, ``last_seq`` the
    highest), when something is about to read an SA's state: ``SaCrypto.esp`` (an ICV
    failure reads ``last_seq`` to find a wrapped counter), the keyed decoder (which may
    reach any SA), the end of the block.  Counting and taking the highest commute, so
    the frames before ``upto`` may be counted at once: one update per SA, not per frame."""

    __slots__ = ("sts", "nums", "seqs", "done", "upto")

    def __init__(self, sts, nums, seqs):
        self.sts, self.nums, self.seqs = sts, nums, seqs  # SaState by SA number; each frame's SA and sequence
        self.done = 0  # frames counted
        self.upto = 0  # frames to count on the next flush (those before the frame at hand)

    def flush(self) -> None:
        a, b = self.done, self.upto
        if b <= a:
            return
        self.done = b
        sts, nums, seqs = self.sts, self.nums[a:b], self.seqs[a:b]
        if b - a < 32:  # a few frames: numpy would cost more than it saves
            for n, s in zip(nums.tolist(), seqs.tolist()):
                st = sts[n]
                st.decrypted += 1
                if s > st.last_seq:  # SaCrypto.inline: last_seq is set
                    st.last_seq = s
            return
        sa, inv = np.unique(nums, return_inverse=True)
        top = np.zeros(len(sa), dtype=np.int64)
        np.maximum.at(top, inv, seqs)
        for n, k, s in zip(sa.tolist(), np.bincount(inv).tolist(), top.tolist()):
            st = sts[n]
            st.decrypted += k
            if s > st.last_seq:
                st.last_seq = s


def _common_tunnel(buf, at, lens):
    """Which of the ESP plaintexts in ``buf`` (each at ``at``, ``lens`` bytes long; 0: the
    packet did not verify) have the common
    trailer that :meth:`FastDecrypt.block` writes itself (RFC 4303 2.4-2.6): next header
    4 and an inner IPv4 packet without options or fragments carrying TCP, ICMP, no next
    header, or UDP not to port 500 / 4500 (what :func:`_inner_needs_decoder` answers
    False for).  Returns (that, as a boolean array; where each inner packet ends -- at its
    total length when that is shorter, the rest being TFC padding (RFC 4303 2.7))."""
    if not lens.any():
        return np.zeros(len(lens), dtype=bool), lens
    buf = np.frombuffer(buf, dtype=np.uint8)
    start = at
    nh = buf.take(start + lens - 1, mode="clip")
    end = lens - 2 - buf.take(start + lens - 2, mode="clip")  # payload | padding | pad length | next header
    head = buf.take(start[:, None] + _AR24, mode="clip")  # the inner IPv4 header, the UDP ports after it
    tot, proto, sport, dport = _be16(head, 2), head[:, 9], _be16(head, 20), _be16(head, 22)
    ok = (nh == 4) & (end >= 28)
    end = np.where((tot >= 20) & (tot < end), tot, end)
    ok &= ((head[:, 0] == 0x45) & (end >= 28) & ((_be16(head, 6) & 0x3FFF) == 0)
           & ((proto == 17) & (sport != 500) & (sport != 4500) & (dport != 500) & (dport != 4500)
              | (proto == 6) | (proto == 1) | (proto == IPPROTO_NONE)))
    return ok, end


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


def _inner(dec, nh, payload, data, off, addrs, iplen, ts, frame_no, spi, depth=1, outer_hdr=20) -> None:
    """What KeyedDecoder.transport does with a decrypted packet (see FastDecrypt.block): ESP
    found at ``depth - 1`` (1 for ESP after the IPv4 header or its UDP header, 2 under AH),
    ``outer_hdr`` bytes of IPv4 header (and AH) before it."""
    spi_text = f"0x{spi:08x}"
    if nh == IPPROTO_IPIP or nh == IPPROTO_IPV6:
        dec.ip_any(payload, 0, len(payload), ts, frame_no, depth, spi_text)
    elif nh != IPPROTO_NONE:
        dec._ip = (data, off + 14, off + 14 + iplen, 4)
        dec.transport(nh, payload, 0, len(payload), bytes(addrs), outer_hdr + len(payload), ts, frame_no, depth,
                      spi_text, 0)
