"""The vectorised fast path: blocks of records classified with numpy, and
the common packets applied to the tracker once per SA and per flow.

Where the time went (the 1M-packet benchmark capture, one core, cProfile and
line_profiler, before this module): the reader's record walk 1.0 s; the
per-packet decoder 3.0 s, of which about 30 % in ``Tracker.esp`` /
``Tracker.flow``, 10 % in ``struct.unpack_from`` and the rest the ``frame`` /
``ipv4`` / ``transport`` dispatch (Python calls and dict look-ups, the same
for every ESP packet of an SA); IKE parsing 0.4 s (11.5k messages); the
tables 1.2 s; start-up 0.2 s.  After the first version of this module (32Ki-
frame batches): the record walk 0.9 s, per-group updates 1.4 s (65k ESP and
97k flow group updates), the frame-by-frame decoding of AH, IKE and
keep-alives 0.4 s.  Hence: the walk in C (:mod:`ipsecpcap._walk`), blocks
classified as they arrive so a batch keeps only the fields it needs (128Ki
frames per batch at less memory), AH in bulk, and the groups of known SAs
and flows applied in tight loops.  Then the classifier's per-block stage
took 0.5 s, about half of it the new-SA question (two ``searchsorted`` per
ESP frame) and the frame-by-frame decoding of 13.5k IKE messages and keep-alives;
with a hash table for that question (:class:`_SeenSAs`), IKE and keep-alives
in bulk and fewer copies of header fields, 0.3 s (callgrind: 2.1G -> 1.2G
instructions).

Two stages, which can run in one process (:class:`VectorDecoder`) or in two
(:mod:`ipsecpcap.parallel`, ``--jobs 2``): a :class:`Classifier` turns
blocks into :class:`Batch` es -- plain data, no tracker -- and an
:class:`Applier` applies them to the :class:`~ipsecpcap.tracker.Tracker`.

The classifier, block by block (:meth:`Classifier._classify_block`):

1. **Classify.**  The first 50 bytes of every record are gathered into an
   ``(n, 50)`` array (Ethernet 14 + IPv4 20 + UDP 8 + ESP 8) and every frame
   is put in one class by the same tests as :class:`~ipsecpcap.decode.Decoder`:
   *ESP* (untagged Ethernet, IPv4 without options, not a fragment, ESP or
   ESP in UDP 4500 with at least the SPI and sequence number captured),
   *flow* (the same IPv4 carrying TCP with its flags captured, or UDP not on
   port 500 or 4500), *AH* (the same IPv4 carrying AH alone, or protecting
   ESP, TCP or UDP off the IKE ports, 16 more bytes gathered after it: the AH
   joins the AH frames, what it protects the ESP or flow frames), *IKE* (the
   same IPv4 carrying UDP on port 500, or on 4500 after the non-ESP marker,
   with the whole 28-byte header captured and a length field no smaller) and
   *NAT-keepalives* (both recorded as the calls the decoder makes, the IKE
   message as bytes: the applier parses it), or *other* (everything else:
   VLAN tags, IPv6, IP options and fragments, ICMP, truncated headers,
   malformed IKE).
2. **Decode the other frames** with the real decoder (and the one
   reassembler) into a sink that records its calls.  The calls name the SA
   and flow keys those frames touch (for an ICMP error, also the quoted
   packet's flow).  The first packet of each new ESP SA is kept
   (``esp_sample``); the block's buffer is not.

and for a batch of blocks (about :data:`BATCH` frames, :meth:`Classifier.flush`):

3. **Group.**  AH and ESP frames are sorted (stably) by SA key -- SPI and
   addresses -- and flows by protocol and their two endpoints, so each group
   is one SA direction or one flow (both directions) in frame order, and its
   sums, first and last values are computed.  A group whose key some other
   frame touches becomes calls, one per frame, as the decoder would make.
4. **Order.**  The calls and the groups (at their first frame; AH before
   what it protects) are put in frame order, so even the tracker's dict of
   SAs fills in the same order as frame by frame (its flows: see below).

The applier first applies the groups whose SA entry exists and every flow
group (they touch nothing else, so order does not matter;
:meth:`_EspGroups.apply_known`, :meth:`_FlowGroups.apply`), then
replays the calls and the other groups in order.  An SA group goes frame by
frame through :meth:`Tracker.esp` / :meth:`Tracker.ah` until its SA's
anti-replay state takes the next in order (``seq == top + 1``, see
:mod:`ipsecpcap.sequence`) and the rest of the group is consecutive; the rest
is one update: counts and bytes added, the last packet's time, frame and
number stored, the frames of the last 64 numbers put in the ring.  Flows are
rows of columns (:class:`~ipsecpcap.tracker.Flows`), found by a hash table in
numpy arrays; a flow group whose flow is not in it is a new flow, made from
its first frame as :meth:`Tracker.flow` would (the sender is the initiator,
but for a SYN-ACK); then every group is added per direction with numpy, the
TCP observations OR-ed (a packet from the initiator with ACK after the
SYN-ACK completes the handshake: the first SYN-ACK is compared with the last
ACK).

Why the results are identical to the frame-by-frame decoder: the tracker's
state is per SA and per flow, a group is taken in bulk only when no other
frame of the batch touches its key, and the bulk update is what
:meth:`Tracker.esp` / :meth:`Tracker.ah` / :meth:`Tracker.flow` compute for
a run in order.  A block whose timestamps go backwards (anywhere, or behind
an earlier block) is decoded frame by frame into calls, since first / last
times then depend on the order.  ``tests/ipsecpcap/test_vector.py`` compares
every table of both paths on every fixture capture, the benchmark capture
scaled down and a synthetic capture that leaves the bulk path every way
there is.  ``IPSECPCAP_FASTPATH=packet`` (or ``analyze_capture(...,
vector=False)``) forces the frame-by-frame path.

With keys (:class:`KeyedClassifier`), the ESP frames keep their place in the bulk path
and are also opened, one by one, in frame order together with the frames the keyed
decoder takes -- AH, which it verifies, and the usual other frames -- so that keys are
tried and bound to SAs in the same order as frame by frame.  What an opened packet
carried joins the block's flow frames when it is IPv4 TCP or UDP in tunnel mode as
:func:`classify` would take it (marked with the SPI); anything else goes through the
keyed decoder into calls.  Where the time went before (the 500k-packet encrypted
benchmark capture, every frame through the keyed decoder; cProfile): 28 us a packet, of
which opening the ESP about a quarter, the rest the decoder's dispatch for the outer and
the inner packet and the tracker's calls; now about 10 us, about half of it opening the
packets (``SaCrypto.esp``, in which ``AESGCM.decrypt`` itself is about 15 %).  Opening the SAs
already bound in a loop of their own, as ``decrypt`` does (``SaCrypto.inline``), gave
0-5 % more and was left out.  ``tests/ipsecpcap/test_vector_keyed.py`` compares both
paths with keys.
"""
from __future__ import annotations

import struct
from array import array
from itertools import repeat

import numpy as np

from .decode import (ETH_IPV4, ETH_IPV6, IKE_PORT, IPPROTO_IPIP, IPPROTO_IPV6, IPPROTO_NONE, LINKTYPE_ETHERNET,
                     NATT_PORT, VLAN_TPIDS, Decoder, KeyedDecoder, _spi_text)
from .dissectors.ike import IKE_HEADER_LEN
from .keytable import KeyTable, endpoint_arrays, endpoints, table_words
from .reader import _cwalk
from .tracker import (FORCE, IPPROTO_AH, IPPROTO_ESP, TCP_DATA_FWD, TCP_FIN_FWD, TCP_FIN_REV, TCP_FIRST_SYN,
                      TCP_RST_FWD, TCP_RST_REV, TCP_SYN_FWD, TCP_SYNACK_REV)

HEAD_BYTES = 50  # Ethernet 14 + IPv4 20 + UDP 8 + ESP SPI and sequence 8
_COLS = np.arange(HEAD_BYTES, dtype=np.int64)
BATCH = 1 << 17  # frames grouped and applied together (see Classifier); memory ~50 bytes each

# TCP flags (RFC 9293 3.1) and the tracker's observations (see ipsecpcap.tracker)
_FIN, _SYN, _RST, _ACK = 0x01, 0x02, 0x04, 0x10
_NONE = np.iinfo(np.int64).max
# an IPv4 packet that ESP carried: version and header length, total length, flags and
# fragment offset, protocol, addresses, ports (RFC 791, 768, 9293)
_INNER4 = struct.Struct("!BxHxxHxB2x8sHH").unpack_from


def _be16(rows, i):
    return (rows[:, i].astype(np.int64) << 8) | rows[:, i + 1]


def _be32(rows, i):
    return np.ascontiguousarray(rows[:, i:i + 4]).view(">u4").ravel().astype(np.int64)


def _addrs(rows, i) -> list[bytes]:
    """The IPv4 source and destination (8 bytes) of frames ``i``, as the decoder hands them on."""
    b = rows[i, 26:34].tobytes()
    return [b[k:k + 8] for k in range(0, len(b), 8)]


class Classes:
    """What :func:`classify` finds, one array entry per record."""

    __slots__ = ("ip4", "tot", "avail", "proto", "sport", "dport", "uend", "esp_udp", "is_esp", "is_flow",
                 "keepalive", "marker", "ike", "isolated")


def classify(rows, caps) -> Classes:
    """The tests of Decoder.frame / ipv4 / transport, for the common shapes, on the first
    :data:`HEAD_BYTES` bytes of each record (``rows``, C-contiguous) and the captured lengths."""
    c = Classes()
    # the rows as big-endian 16-bit words (word k: bytes 2k and 2k + 1), each field below
    # at an even offset: a column of words, not a copy of two columns of bytes combined
    w = rows.view(">u2")
    et = w[:, 6]
    c.tot = tot = w[:, 8].astype(np.int64)
    c.ip4 = ip4 = ((caps >= 34) & (et == ETH_IPV4) & (rows[:, 14] == 0x45) & ((w[:, 10] & 0x3FFF) == 0)
                   & (tot >= 20))
    c.proto = proto = rows[:, 23]
    c.avail = avail = np.minimum(tot, caps - 14) - 20  # IP payload bytes captured (Ethernet padding cut off)
    esp_raw = ip4 & (proto == 50) & (avail >= 8)
    udp = ip4 & (proto == 17) & (avail >= 8)
    c.sport = sport = w[:, 17].astype(np.int64)
    c.dport = dport = w[:, 18].astype(np.int64)
    ulen = w[:, 19]
    c.uend = uend = np.where((ulen >= 8) & (ulen < avail), ulen, avail)  # RFC 768: the length includes the header
    unum = uend - 8  # UDP payload bytes
    natt = udp & ((sport == NATT_PORT) | (dport == NATT_PORT))
    c.keepalive = keepalive = natt & (unum == 1) & (rows[:, 42] == 0xFF)  # RFC 3948 2.2
    c.marker = marker = natt & (unum >= 4) & (w[:, 21] == 0) & (w[:, 22] == 0)  # RFC 3948 2.1: non-ESP marker
    c.esp_udp = esp_udp = natt & ~keepalive & ~marker & (unum >= 8)
    c.ike = ike = udp & ~natt & ((sport == IKE_PORT) | (dport == IKE_PORT))
    c.is_esp = esp_raw | esp_udp
    c.is_flow = (udp & ~natt & ~ike) | (ip4 & (proto == 6) & (avail >= 14))
    # frames whose decoding touches no SA, no flow, no reassembly and no crypto
    non_ip = (caps >= 14) & (et != ETH_IPV4) & (et != ETH_IPV6)
    for tpid in VLAN_TPIDS:
        non_ip &= et != tpid
    c.isolated = keepalive | marker | ike | non_ip
    return c


def _gather_into(data, offs, width, out) -> None:
    """The ``width`` bytes at each of ``offs`` in ``data`` into the rows of ``out``."""
    if _cwalk is not None:
        _cwalk.heads(data, offs, width, out)
    else:  # column by column: an index array of n entries, not n * width
        raw = np.frombuffer(data, dtype=np.uint8)
        for c in range(width):
            raw.take(offs + c, mode="clip", out=out[:, c])


def _in_frame_order(parts: list[tuple]) -> tuple:
    """Arrays of one or more parts (tuples of arrays, frame indices first), concatenated
    and put in frame order."""
    if len(parts) == 1:
        return parts[0]
    cols = [np.concatenate(c) for c in zip(*parts)]
    order = np.argsort(cols[0], kind="stable")
    return tuple(c[order] for c in cols)


def gather(block):
    """(rows, offsets, caplens, ts) of a block: the first HEAD_BYTES bytes of each record
    (past the end of the buffer: zeros or junk, never used: the tests look at caplens)."""
    if block.arrays is not None:
        offs, caps, ts = block.arrays
    else:
        offs = np.array(block.offsets, dtype=np.int64)
        caps = np.array(block.caplens, dtype=np.int64)
        ts = np.array(block.ts, dtype=np.float64)
    rows = np.empty((len(offs), HEAD_BYTES), dtype=np.uint8)
    _gather_into(block.data, offs, HEAD_BYTES, rows)
    return rows, offs, caps, ts


def _esp_fields(c: Classes, offs, data, ah_esp) -> tuple | None:
    """The ESP frames of a block in frame order -- ESP alone or in UDP (RFC 3948), as
    :func:`classify` finds them, and under AH (``ah_esp``: those frames and where their
    ESP starts, or None) -- and their fields: (frame indices, SPI, sequence number, in
    UDP, where the ESP starts and the packet ends in the frame); None if there are none."""
    at = np.where(c.esp_udp, 42, 34)  # the ESP header: after IPv4, and UDP
    is_esp = c.is_esp
    if ah_esp is not None:
        j, after_ah = ah_esp
        at[j] = after_ah
        is_esp = is_esp.copy()
        is_esp[j] = True
    i = np.flatnonzero(is_esp)
    if not len(i):
        return None
    u = c.esp_udp[i]
    start = at[i]
    head = np.empty((len(i), 8), dtype=np.uint8)  # SPI and sequence number (RFC 4303 2)
    _gather_into(data, offs[i] + start, 8, head)
    head = head.view(">u4").astype(np.int64)
    return i, head[:, 0], head[:, 1], u, start, 34 + np.where(u, c.uend[i], c.avail[i])


def _flow_key(proto: int, addrs: bytes, sport: int, dport: int):
    """The direction-free key of a flow, as the bulk path groups IPv4 flows."""
    if len(addrs) != 8:
        return None  # IPv6: never in the bulk path
    a, b = endpoints(addrs, sport, dport)
    return (proto, a, b) if a <= b else (proto, b, a)


class _RecordingDecoder(Decoder):
    """The decoder as the classifier runs it: IKE messages are handed on as bytes."""

    parse_ike = staticmethod(lambda data: None)


class _KeyedRecordingDecoder(KeyedDecoder):
    """The keyed decoder as :class:`KeyedClassifier` runs it: IKE messages are handed on
    as bytes, as by :class:`_RecordingDecoder`."""

    __slots__ = ()
    parse_ike = staticmethod(lambda data: None)


class _Recorder:
    """A decoder sink that records the calls it receives, in order, as (position
    in the batch, method, arguments), and the SA and flow keys they touch."""

    __slots__ = ("calls", "pos", "esp_keys", "ah_keys", "flow_keys", "seen", "samples", "_key")

    def __init__(self, seen: set):
        self.calls: list = []
        self.pos = 0  # the batch position of the frame being decoded
        self.esp_keys: set = set()
        self.ah_keys: set = set()  # (spi, address pair as an int): IPv4 AH SAs the calls touch
        self.flow_keys: set = set()
        self.seen = seen  # ESP SA keys of earlier batches
        self.samples: dict = {}  # SA key -> (position, first packet): new SAs of this batch
        self._key = None

    def esp(self, frame, ts, addrs, spi, seq, length, encap, fragments):
        addrs = bytes(addrs)
        k = (IPPROTO_ESP, spi, addrs)
        self.esp_keys.add(k)
        self.calls.append((self.pos, "esp", (frame, ts, addrs, spi, seq, length, encap, fragments)))
        if k in self.seen or k in self.samples:
            return False
        self._key = k
        return True  # the decoder hands over the packet (esp_sample)

    def esp_sample(self, spi, addrs, packet) -> None:
        self.samples[self._key] = (self.pos, bytes(packet))

    def ah(self, frame, ts, addrs, spi, seq, length, next_header):
        addrs = bytes(addrs)
        if len(addrs) == 8:
            self.ah_keys.add((spi, int.from_bytes(addrs, "big")))
        self.calls.append((self.pos, "ah", (frame, ts, addrs, spi, seq, length, next_header)))

    def flow(self, frame, ts, proto, addrs, sport, dport, length, tcp_flags, protected_by):
        addrs = bytes(addrs)
        self.flow_keys.add(_flow_key(proto, addrs, sport, dport))
        self.calls.append((self.pos, "flow", (frame, ts, proto, addrs, sport, dport, length, tcp_flags,
                                              protected_by)))

    def icmp_error(self, frame, ts, addrs, proto, icmp_type, code, quoted, quoted_flow):
        if quoted_flow is not None:
            p, a, sp, dp = quoted_flow
            quoted_flow = (p, bytes(a), sp, dp)
            self.flow_keys.add(_flow_key(p, quoted_flow[1], sp, dp))
        self.calls.append((self.pos, "icmp_error", (frame, ts, bytes(addrs), proto, icmp_type, code, quoted,
                                                    quoted_flow)))

    def ike(self, frame, ts, addrs, sport, dport, msg, marker, fragments, raw):
        self.calls.append((self.pos, "ike", (frame, ts, bytes(addrs), sport, dport, marker, fragments, raw)))

    def keepalive(self, frame, ts, addrs, sport, dport):
        self.calls.append((self.pos, "keepalive", (frame, ts, bytes(addrs), sport, dport)))

    def truncated_ipsec(self, frame, ts, addrs, protocol, spi, encap):
        self.calls.append((self.pos, "truncated_ipsec", (frame, ts, bytes(addrs), protocol, spi, encap)))


class Batch:
    """What the classifier hands to the applier: plain data (it is pickled between
    processes with ``--jobs 2``).  ``todo`` lists, in frame order, ``(kind, i)``:
    kind 0 is ``calls[i]``, 1 ESP group i, 2 flow group i, 3 AH group i."""

    __slots__ = ("todo", "calls", "ah", "esp", "flows", "samples", "counts", "frames")

    def __init__(self):
        self.todo = np.zeros((0, 2), dtype=np.int64)
        self.calls: list = []
        self.ah = None
        self.esp = None
        self.flows = None
        self.samples: dict = {}  # SA key -> its first packet (from the SPI on), for new ESP SAs
        self.counts: dict = {}
        self.frames = 0


class _SeenSAs(KeyTable):
    """The set of ESP SA keys (SPI, 64-bit IPv4 address pair) seen so far: each block
    asks for its SAs' first packets whether they are new.  There, on the 1M benchmark
    capture, the classifier's questions take 0.05 s; two binary searches over the
    sorted keys (``searchsorted``) took 0.2 s."""

    def add(self, spi: int, addr: int) -> None:
        self.put(spi, addr, 0)

    def contains(self, spi: np.ndarray, addr: np.ndarray) -> np.ndarray:
        """Which of the keys (SPIs, address pairs as unsigned 64-bit) are in the set."""
        return self.get(spi, addr) >= 0


class Classifier:
    """Stage one: blocks in, :class:`Batch` es out (see the module docstring).
    Owns the decoder for the other frames (and so the reassembler and the frame
    accounting of those frames)."""

    def __init__(self, batch: int | None = None, hand_over: int = 0):
        self.batch = BATCH if batch is None else batch
        self.hand_over = hand_over  # every hand_over-th batch goes out ungrouped (0: none)
        self._taken = 0
        self.seen: set = set()  # ESP SA keys seen so far (see _see)
        self._seen_v4 = _SeenSAs()  # the IPv4 ones again, for questions by the array
        self.recorder = _Recorder(self.seen)
        self.decoder = _RecordingDecoder(self.recorder)
        self.reasm = self.decoder.reasm
        self.max_ts = float("-inf")  # the latest timestamp of every frame so far
        self._pending = 0  # frames taken since the last batch
        self._start_batch()
        # frames decoded in batches / frame by frame (whole blocks), groups of a batch
        # turned into calls because another frame shares their key
        self.stats = {"bulk_frames": 0, "frame_frames": 0, "batches": 0, "conflict_groups": 0, "decoded": 0}

    def add(self, block) -> list[Batch]:
        """Take one block; returns the batches that are complete (none, one or two)."""
        n = len(block.arrays[0]) if block.arrays is not None else len(block.offsets)
        if n and block.linktypes == LINKTYPE_ETHERNET:
            ts = block.arrays[2] if block.arrays is not None else np.array(block.ts, dtype=np.float64)
            if ts[0] >= self.max_ts and not (ts[1:] < ts[:-1]).any():
                self.max_ts = float(ts[-1])
                self._classify_block(block)
                return [self.flush()] if self._pending >= self.batch else []
        # timestamps out of order, another link type, no record: frame by frame
        out = [self.flush()] if self._pending else []
        out.append(self._frame_by_frame(block))
        if block.ts:
            self.max_ts = max(self.max_ts, max(block.ts))
        return out

    def _classify_block(self, block) -> None:
        """Steps 1 and 2 for one block, at once (so the batch does not keep the block's
        buffer): classify, decode the other frames into calls, keep the fields of the
        ESP and flow frames (and the first packet of each new ESP SA)."""
        base = self._pending  # batch position of the block's first frame
        rows, offs, caps, ts = gather(block)
        n = len(offs)
        frame_array = getattr(block, "frame_array", None)
        frames = frame_array() if frame_array is not None else np.array(block.frames, dtype=np.int64)
        self._pending += n
        counts = self._counts
        for frame, kind, detail in block.bad:
            cat = f"malformed:{kind}:record"
            counts[cat] = counts.get(cat, 0) + 1
        c = classify(rows, caps)
        tot, proto, sport, dport, is_esp, is_flow = c.tot, c.proto, c.sport, c.dport, c.is_esp, c.is_flow
        data = block.data
        a64 = np.ascontiguousarray(rows[:, 26:34]).view(">u8").ravel()
        flow = []  # (frame indices, proto, sport, dport, TCP flags, AH SPI or -1)
        i = np.flatnonzero(is_flow)
        if len(i):
            flow.append((i, proto[i].astype(np.int64), sport[i], dport[i], rows[i, 47].astype(np.int64),
                         np.full(len(i), -1, dtype=np.int64)))
            counts["analysed:ip"] = counts.get("analysed:ip", 0) + len(i)
        n_esp = int(np.count_nonzero(is_esp))
        if n_esp:
            counts["analysed:esp"] = counts.get("analysed:esp", 0) + n_esp
        is_ah, ah_esp = self._ah_frames(c, rows, offs, data, base, ts, frames, a64, flow)
        esp = _esp_fields(c, offs, data, ah_esp)
        is_ike = self._ike_frames(c, rows, offs, data, base, ts, frames)

        # ---- decode the other frames, recording the calls
        other = np.flatnonzero(~(is_esp | is_flow | is_ah | is_ike))
        self.stats["decoded"] += len(other)
        inner = self._decode(other, esp, c, rows, offs, caps, ts, frames, data, base)

        rec = self.recorder
        if esp is not None:
            i, spi, seq, u, start, end = esp
            addr = a64[i]
            self._esp.append((i + base, spi, addr, seq, tot[i], u, ts[i], frames[i]))
            # the first packet of every new SA (from the SPI to the end captured), for esp_sample
            j = np.flatnonzero(~self._seen_v4.contains(spi, addr))
            samples, seen = rec.samples, self.seen
            o = offs[i[j]]
            # in frame order; after an SA's first, _see makes it seen
            for f, s, a, p, q in zip(i[j].tolist(), spi[j].tolist(), addr[j].tolist(), (o + start[j]).tolist(),
                                     (o + end[j]).tolist()):
                k = (IPPROTO_ESP, s, a.to_bytes(8, "big"))
                if k in seen:
                    continue
                self._see((k,))
                old = samples.get(k)
                if old is None or old[0] > base + f:
                    samples[k] = (base + f, data[p:q])
        parts = []  # the flow frames: (frame indices, proto, address pair, ports, IP length, flags, SPI)
        if flow:
            i, pr, sp, dp, flags, prot = _in_frame_order(flow)
            parts.append((i, pr, a64[i], sp, dp, tot[i], flags, prot))
        if inner is not None:  # (KeyedClassifier: what ESP carried)
            parts.append(inner)
        if parts:
            i, pr, addr, sp, dp, iplen, flags, prot = _in_frame_order(parts)
            self._flow.append((i + base, pr, addr, sp, dp, iplen, flags, ts[i], frames[i], prot))

    def _decode(self, other, esp, c, rows, offs, caps, ts, frames, data, base) -> tuple | None:
        """Step 2: the frames ``other`` (indices into the block) through the decoder, in
        order, its calls recorded at their batch positions.  (``esp``, the ESP frames'
        fields, and what it returns are for :class:`KeyedClassifier`.)"""
        rec = self.recorder
        counts = self._counts
        frame_fn = self.decoder.frame
        for i, o, cl, t, fr in zip(other.tolist(), offs[other].tolist(), caps[other].tolist(),
                                   ts[other].tolist(), frames[other].tolist()):
            rec.pos = base + i
            cat = frame_fn(LINKTYPE_ETHERNET, data, o, o + cl, t, fr)
            counts[cat] = counts.get(cat, 0) + 1

    def _ah_frames(self, c, rows, offs, data, base, ts, frames, a64, flow) -> tuple:
        """AH in IPv4 (RFC 4302), as Decoder.transport / ah take it, when it is AH alone
        (the capture ends in or right after it), or protects ESP, TCP or UDP (not on
        the IKE ports) whose header was captured: the AH frames are kept for the AH
        groups, the flows they protect are added to ``flow``.  Returns which frames were
        taken (the rest go to the decoder) and, for AH over ESP, the frames and where
        their ESP starts (None if there are none)."""
        i = np.flatnonzero(c.ip4 & (c.proto == 51) & (c.avail >= 12))
        if not len(i):
            return np.zeros(len(rows), dtype=bool), None
        r = rows[i]
        hlen = (r[:, 35].astype(np.int64) + 2) * 4  # RFC 4302 2.2: payload length in 32-bit words, minus 2
        nh = r[:, 34].astype(np.int64)
        left = c.avail[i] - hlen  # bytes captured after AH
        inner = np.zeros((len(i), 16), dtype=np.uint8)
        _gather_into(data, offs[i] + 34 + np.minimum(hlen, c.avail[i]), 16, inner)
        isp, idp = _be16(inner, 0), _be16(inner, 2)
        ike_ports = (isp == IKE_PORT) | (idp == IKE_PORT) | (isp == NATT_PORT) | (idp == NATT_PORT)
        alone = left < 0
        under_esp = (nh == 50) & (left >= 8)
        under_tcp = (nh == 6) & (left >= 14)
        under_udp = (nh == 17) & (left >= 8) & ~ike_ports
        ok = (hlen >= 12) & (alone | under_esp | under_tcp | under_udp)
        if not ok.all():
            i, r, hlen, nh, inner, alone, under_esp, under_tcp, under_udp = (
                x[ok] for x in (i, r, hlen, nh, inner, alone, under_esp, under_tcp, under_udp))
        taken = np.zeros(len(rows), dtype=bool)
        if not len(i):
            return taken, None
        taken[i] = True
        spi = _be32(r, 38)
        self._ah.append((i + base, spi, a64[i], _be32(r, 42), c.tot[i], nh, ts[i], frames[i]))
        counts = self._counts
        n_esp = int(under_esp.sum())
        esp = None
        if n_esp:
            esp = (i[under_esp], 34 + hlen[under_esp])
            counts["analysed:ah+esp"] = counts.get("analysed:ah+esp", 0) + n_esp
        f = under_tcp | under_udp
        if f.any():
            flow.append((i[f], nh[f], _be16(inner[f], 0), _be16(inner[f], 2),
                         np.where(under_tcp[f], inner[f, 13], 0).astype(np.int64), spi[f]))
        n_ah = len(i) - n_esp
        if n_ah:
            counts["analysed:ah"] = counts.get("analysed:ah", 0) + n_ah
        return taken, esp

    def _ike_frames(self, c, rows, offs, data, base, ts, frames) -> np.ndarray:
        """NAT-keepalives, IKE on UDP 500 and IKE after the non-ESP marker on UDP 4500, in
        IPv4 as :func:`classify` takes it: the call Decoder.transport / ike records for each,
        at the frame's batch position.  IKE whose 28-byte header (RFC 7296 3.1) was not
        captured whole, or whose length field is smaller than that (malformed, for the
        decoder), goes to the decoder.  Returns which frames were taken."""
        counts, calls = self._counts, self.recorder.calls
        taken = c.keepalive.copy()
        i = np.flatnonzero(taken)
        if len(i):
            calls.extend(zip((i + base).tolist(), repeat("keepalive"), zip(
                frames[i].tolist(), ts[i].tolist(), _addrs(rows, i), c.sport[i].tolist(), c.dport[i].tolist())))
            counts["analysed:natt-keepalive"] = counts.get("analysed:natt-keepalive", 0) + len(i)
        i = np.flatnonzero(c.ike | c.marker)
        if not len(i):
            return taken
        marker = c.marker[i]
        start = np.where(marker, 46, 42)  # the IKE header in the frame: after UDP, and the marker
        end = 34 + c.uend[i]  # the end of the UDP datagram captured
        # the header captured whole (the decoder's "reported" bytes sent, by the UDP length if it
        # has one, are never fewer than those captured)
        ok = end - start >= IKE_HEADER_LEN
        if not ok.all():
            i, marker, start, end = i[ok], marker[ok], start[ok], end[ok]
        length = np.empty((len(i), 4), dtype=np.uint8)  # the header's length field, at 24
        _gather_into(data, offs[i] + start + 24, 4, length)
        ok = _be32(length, 0) >= IKE_HEADER_LEN
        if not ok.all():
            i, marker, start, end = i[ok], marker[ok], start[ok], end[ok]
        if not len(i):
            return taken
        taken[i] = True
        o = offs[i]
        raw = [data[a:b] for a, b in zip((o + start).tolist(), (o + end).tolist())]
        calls.extend(zip((i + base).tolist(), repeat("ike"), zip(
            frames[i].tolist(), ts[i].tolist(), _addrs(rows, i), c.sport[i].tolist(), c.dport[i].tolist(),
            marker.tolist(), repeat(0), raw)))
        counts["analysed:ike"] = counts.get("analysed:ike", 0) + len(i)
        return taken

    def _see(self, keys) -> None:
        """Add ESP SA keys (protocol, SPI, address bytes) to ``seen``."""
        seen = self.seen
        for k in keys:
            if k not in seen:
                seen.add(k)
                if len(k[2]) == 8:
                    self._seen_v4.add(k[1], int.from_bytes(k[2], "big"))

    def _frame_by_frame(self, block) -> Batch:
        rec = self.recorder  # empty: the batch before was flushed
        counts = {}
        for frame, kind, detail in block.bad:
            cat = f"malformed:{kind}:record"
            counts[cat] = counts.get(cat, 0) + 1
        frame_fn = self.decoder.frame
        lts = block.linktypes
        data = block.data
        for i, (frame, off, caplen, ts) in enumerate(zip(block.frames, block.offsets, block.caplens, block.ts)):
            rec.pos = i
            cat = frame_fn(lts if isinstance(lts, int) else lts[i], data, off, off + caplen, ts, frame)
            counts[cat] = counts.get(cat, 0) + 1
        b = Batch()
        b.calls = [c[1:] for c in rec.calls]
        b.todo = np.column_stack((np.zeros(len(b.calls), np.int64), np.arange(len(b.calls))))
        b.samples = {k: v[1] for k, v in rec.samples.items()}
        b.counts = counts
        b.frames = len(block.offsets)
        self._see(rec.esp_keys)
        self.stats["frame_frames"] += b.frames
        self._start_batch()
        return b

    def _start_batch(self) -> None:
        rec = self.recorder
        rec.calls = []
        rec.samples = {}
        rec.esp_keys = set()
        rec.ah_keys = set()
        rec.flow_keys = set()
        self._ah: list[tuple] = []  # per block: the fields of its AH frames
        self._esp: list[tuple] = []  # per block: the fields of its ESP frames
        self._flow: list[tuple] = []  # per block: the fields of its TCP / UDP flow frames
        self._counts: dict = {}
        self._pending = 0

    def flush(self) -> Batch | Taken | None:
        """Steps 3 and 4 for the blocks taken since the last batch; None if there are none.
        With ``hand_over`` k, every k-th batch is handed over as it was :class:`Taken`,
        to be grouped by the applier (see :mod:`ipsecpcap.parallel`)."""
        taken = self._take()
        if taken is None:
            return None
        self._taken += 1
        if self.hand_over and self._taken % self.hand_over == 0:
            return taken
        return group(taken, self.stats)

    def _take(self) -> Taken | None:
        """The frames taken since the last batch, for :func:`group`; a new batch begins."""
        n = self._pending
        if not n:
            return None
        rec = self.recorder
        t = Taken()
        t.frames, t.counts = n, self._counts
        t.calls, t.samples = rec.calls, rec.samples
        t.bad_sas = {(spi, int.from_bytes(a, "big")) for p, spi, a in rec.esp_keys if len(a) == 8}
        t.bad_ah, t.bad_flows = rec.ah_keys, rec.flow_keys
        t.ah, t.esp, t.flow = self._ah, self._esp, self._flow
        self._see(rec.esp_keys)
        self.stats["bulk_frames"] += n
        self.stats["batches"] += 1
        self._start_batch()
        return t


class KeyedClassifier(Classifier):
    """Stage one with keys: the classifier's bulk path for the frames it can take without
    them -- flows, IKE, NAT-keepalives, and the ESP packets' own accounting -- and the
    keyed decoder (:class:`~ipsecpcap.decode.KeyedDecoder`) for what needs them: every
    ESP packet of the bulk path is opened here and what it carried decoded, and AH
    frames, which are verified, go frame by frame with the other frames.  ``crypto`` (a
    :class:`~ipsecpcap.sacrypto.SaCrypto`) keeps what it verified.

    The keys are tried, and SAs bound to them, in frame order as by the keyed decoder
    alone: the ESP packets and the decoder's frames are taken together, in frame order
    (:meth:`_decode`).  What an opened packet carried joins the block's flow frames when
    it is IPv4 TCP or UDP in tunnel mode; anything else is decoded by the keyed decoder
    into calls at its frame's position, and the flow keys those touch keep the same flows
    out of the bulk groups (see :func:`group`), as for any decoded frame.
    ``tests/ipsecpcap/test_vector_keyed.py`` compares it with the keyed decoder alone."""

    def __init__(self, crypto, batch: int | None = None, hand_over: int = 0):
        # half the frames per batch: what ESP carried makes about as many flow frames again
        # (analyze --keys of the 500k-packet encrypted benchmark capture: peak memory 214-223 MB
        # with BATCH, 193 MB with half, 174 MB frame by frame; the time the same within noise)
        super().__init__(BATCH // 2 if batch is None else batch, hand_over)
        self.crypto = crypto
        self.decoder = _KeyedRecordingDecoder(self.recorder, crypto)
        self.reasm = self.decoder.reasm

    def _ah_frames(self, c, rows, offs, data, base, ts, frames, a64, flow) -> tuple:
        """With keys every AH frame goes to the keyed decoder, which verifies it."""
        return np.zeros(len(rows), dtype=bool), None

    def _decode(self, other, esp, c, rows, offs, caps, ts, frames, data, base) -> tuple | None:
        """The frames ``other`` through the keyed decoder, and every ESP frame opened
        (``esp``: the bulk path's fields), all in frame order.  An opened tunnel-mode
        packet that is IPv4 TCP or UDP as :func:`classify` takes it becomes a flow
        frame of the bulk path, marked with the ESP SPI: returns those, as the flow
        frames' fields (frame indices, protocol, address pair, ports, IP length, TCP
        flags, SPI), or None; what else was opened goes through the keyed decoder."""
        if esp is None:
            super()._decode(other, esp, c, rows, offs, caps, ts, frames, data, base)
            return None
        i_esp, spi, seq = esp[0], esp[1], esp[2]
        n_other = len(other)
        order = np.argsort(np.concatenate((other, i_esp)), kind="stable").tolist()
        rec = self.recorder
        counts = self._counts
        dec = self.decoder
        frame_fn = dec.frame
        crypto_esp = self.crypto.esp
        o_pos, o_offs, o_caps, o_ts, o_frames = (other.tolist(), offs[other].tolist(), caps[other].tolist(),
                                                 ts[other].tolist(), frames[other].tolist())
        # an ESP frame: where its ESP starts and ends, where its IP header and the frame end
        e_offs = offs[i_esp]
        e_start = (e_offs + esp[4]).tolist()
        e_end = (e_offs + esp[5]).tolist()
        e_ip = (e_offs + 14).tolist()
        e_frame_end = (e_offs + caps[i_esp]).tolist()
        e_addrs = _addrs(rows, i_esp)
        e_ts, e_frames, e_spi, e_seq, e_pos = (ts[i_esp].tolist(), frames[i_esp].tolist(), spi.tolist(),
                                               seq.tolist(), i_esp.tolist())
        flows = []  # (frame index, proto, address pair, sport, dport, IP length, TCP flags, SPI)
        for k in order:
            if k < n_other:
                rec.pos = base + o_pos[k]
                o = o_offs[k]
                cat = frame_fn(LINKTYPE_ETHERNET, data, o, o + o_caps[k], o_ts[k], o_frames[k])
                counts[cat] = counts.get(cat, 0) + 1
                continue
            k -= n_other
            s, addrs = e_spi[k], e_addrs[k]
            res = crypto_esp(s, addrs, e_seq[k], bytes(data[e_start[k]:e_end[k]]))
            if res is None or res.status != "ok":
                continue
            inner, nh = res.payload, res.next_header
            if nh == IPPROTO_IPIP and len(inner) >= 28:
                # the tests of Decoder.ipv4 / transport for IPv4 without options, not a
                # fragment, carrying TCP with its flags or UDP off the IKE ports
                vihl, tot, frag, pr, a, sp, dp = _INNER4(inner)
                if vihl == 0x45 and tot >= 20 and not frag & 0x3FFF:
                    avail = (tot if tot < len(inner) else len(inner)) - 20
                    if pr == 6 and avail >= 14:
                        flows.append((e_pos[k], 6, int.from_bytes(a, "big"), sp, dp, tot, inner[33], s))
                        continue
                    if pr == 17 and avail >= 8 and sp != IKE_PORT and dp != IKE_PORT and sp != NATT_PORT \
                            and dp != NATT_PORT:
                        flows.append((e_pos[k], 17, int.from_bytes(a, "big"), sp, dp, tot, 0, s))
                        continue
            # what KeyedDecoder.transport does with an opened packet of an IPv4 frame
            # without options (the outer header: 20 bytes)
            rec.pos = base + e_pos[k]
            dec._ip = (data, e_ip[k], e_frame_end[k], 4)  # (as KeyedDecoder.ipv4 leaves it)
            t, fr = e_ts[k], e_frames[k]
            if nh == IPPROTO_IPIP or nh == IPPROTO_IPV6:  # tunnel mode (RFC 4303 3.1.2)
                dec.ip_any(inner, 0, len(inner), t, fr, 1, _spi_text(s))
            elif nh != IPPROTO_NONE:  # transport mode; 59 is a TFC dummy packet (RFC 4303 2.6)
                dec.transport(nh, inner, 0, len(inner), addrs, 20 + len(inner), t, fr, 1, _spi_text(s), 0)
        if not flows:
            return None
        i, pr, addr, sp, dp, iplen, flags, prot = zip(*flows)
        i64 = np.int64
        return (np.array(i, i64), np.array(pr, i64), np.array(addr, np.uint64), np.array(sp, i64),
                np.array(dp, i64), np.array(iplen, i64), np.array(flags, i64), np.array(prot, i64))


class Taken:
    """The frames of a batch as the classifier took them, before grouping: per block,
    the fields of its AH, ESP and flow frames, the recorded calls and the keys they
    touch.  Plain data: with ``--jobs 2`` some are grouped by the applier's process."""

    __slots__ = ("frames", "counts", "calls", "samples", "bad_sas", "bad_ah", "bad_flows", "ah", "esp", "flow")


def group(t: Taken, stats: dict | None = None) -> Batch:
    """Steps 3 and 4 (see the module docstring): the :class:`Batch` of taken frames.
    ``stats``: the classifier's counters (``conflict_groups``)."""
    batch = Batch()
    batch.frames = t.frames
    batch.counts = t.counts
    calls = t.calls

    # ---- group; a group whose key another frame touches becomes calls.  AH first:
    # where an AH group and an ESP or flow group start at the same frame (AH+ESP,
    # AH protecting TCP), the decoder records the AH first
    pos, kinds, ids = [], [], []
    for cls, parts, bad, kind, name in ((_AhGroups, t.ah, t.bad_ah, 3, "ah"),
                                        (_EspGroups, t.esp, t.bad_sas, 1, "esp"),
                                        (_FlowGroups, t.flow, t.bad_flows, 2, "flows")):
        if not parts:
            continue
        grp = cls(*(np.concatenate(c) for c in zip(*parts)))
        keep = _keep(grp, [k in bad for k in grp.keys] if bad else None, calls, stats)
        setattr(batch, name, grp)
        pos.append(grp.first[keep])
        grp.drop_arrays()
        kinds.append(np.full(len(keep), kind, dtype=np.int64))
        ids.append(keep)

    # ---- put calls and groups in frame order
    calls.sort(key=_call_pos)  # stable: the calls of one frame stay in order
    pos.append(np.array([c[0] for c in calls], dtype=np.int64))
    kinds.append(np.zeros(len(calls), dtype=np.int64))
    ids.append(np.arange(len(calls), dtype=np.int64))
    pos = np.concatenate(pos)
    order = np.argsort(pos, kind="stable")
    batch.todo = np.column_stack((np.concatenate(kinds)[order], np.concatenate(ids)[order]))
    batch.calls = [c[1:] for c in calls]
    batch.samples = {k: v[1] for k, v in t.samples.items()}
    return batch


def _keep(grp, conflict, calls, stats) -> np.ndarray:
    """The groups taken in bulk; the frames of the others become calls."""
    ids = np.arange(len(grp.first))
    if conflict is None or not any(conflict):
        return ids
    conflict = np.array(conflict, dtype=bool)
    for g in np.flatnonzero(conflict).tolist():
        calls.extend(grp.calls_of(g))
        if stats is not None:
            stats["conflict_groups"] += 1
    return ids[~conflict]


def _call_pos(call):
    return call[0]


class Applier:
    """Stage two: applies :class:`Batch` es to a tracker, in order."""

    def __init__(self, tracker):
        self.tracker = tracker
        self.counts: dict[str, int] = {}
        self._addrs: dict[int, bytes] = {}  # 64-bit address pair -> 8 bytes (a cache)
        # the tracker's entries by the groups' own keys: an SA entry or a flow row is
        # created once and only ever updated in place, so these stay valid
        self._sa_cache: dict[tuple, list] = {}  # (spi, address pair) -> ESP SA entry
        self._ah_cache: dict[tuple, list] = {}  # (spi, address pair) -> AH SA entry

    def apply(self, batch: Batch | Taken) -> None:
        """Apply a batch (a :class:`Taken` one is grouped first)."""
        if type(batch) is Taken:
            batch = group(batch)
        tr = self.tracker
        calls, samples = batch.calls, batch.samples
        esp, flows = batch.esp, batch.flows
        sa_cache = self._sa_cache
        todo = batch.todo
        # Known SAs and all flows first: a group whose SA entry exists, or a flow group,
        # touches nothing but that entry or flow (no other frame of the batch shares its
        # key), so it can be applied out of frame order; the rest keep their order below.
        esp_apply = ah_apply = None
        ah, ah_cache = batch.ah, self._ah_cache
        if ah is not None:
            ah.prepare()
            todo = _drop_done(todo, 3, ah.apply_known(_ids(todo, 3), ah_cache))
            ah_apply = ah.apply
        if esp is not None:
            esp.prepare()
            todo = _drop_done(todo, 1, esp.apply_known(_ids(todo, 1), sa_cache))
            esp_apply = esp.apply
        if flows is not None:
            is_flow = todo[:, 0] == 2
            flows.apply(todo[is_flow, 1], tr.flows)
            todo = todo[~is_flow]
        methods = {name: getattr(tr, name) for name in ("ah", "flow", "icmp_error", "keepalive", "truncated_ipsec")}
        addrs_of = self.addrs_of
        for kind, i in todo.tolist():
            if kind == 1:
                esp_apply(i, tr, addrs_of, samples, sa_cache)
            elif kind == 3:
                ah_apply(i, tr, addrs_of, samples, ah_cache)
            else:
                name, args = calls[i]
                if name == "esp":
                    if tr.esp(*args):
                        tr.esp_sample(args[3], args[2], samples[(IPPROTO_ESP, args[3], args[2])])
                elif name == "ike":
                    frame, ts, addrs, sport, dport, marker, fragments, raw = args
                    tr.ike(frame, ts, addrs, sport, dport, Decoder.parse_ike(raw), marker, fragments, raw)
                else:
                    methods[name](*args)
        counts = self.counts
        for k, v in batch.counts.items():
            counts[k] = counts.get(k, 0) + v

    def addrs_of(self, a: int) -> bytes:
        b = self._addrs.get(a)
        if b is None:
            if len(self._addrs) > 1 << 16:
                self._addrs.clear()
            b = self._addrs[a] = a.to_bytes(8, "big")
        return b


def _ids(todo, kind) -> list[int]:
    """The groups of one kind that the batch applies (not those turned into calls)."""
    return todo[todo[:, 0] == kind, 1].tolist()


def _drop_done(todo, kind, done):
    """``todo`` without the groups of ``kind`` listed in ``done``."""
    if not len(done):
        return todo
    is_kind = todo[:, 0] == kind
    gone = np.zeros(int(todo[is_kind, 1].max()) + 1, dtype=bool)
    gone[done] = True
    is_kind[is_kind] = gone[todo[is_kind, 1]]
    return todo[~is_kind]


class VectorDecoder:
    """Both stages in one process, with the interface of :class:`Decoder`
    (``run_block``, ``finish``, ``counts``, ``reasm``)."""

    def __init__(self, tracker, batch: int | None = None, crypto=None):
        self.tracker = tracker
        self.classifier = Classifier(batch) if crypto is None else KeyedClassifier(crypto, batch)
        self.applier = Applier(tracker)
        self.counts = self.applier.counts
        self.reasm = self.classifier.reasm
        self.stats = self.classifier.stats

    def run_block(self, block) -> None:
        for b in self.classifier.add(block):
            self.applier.apply(b)

    def finish(self) -> None:
        b = self.classifier.flush()
        if b is not None:
            self.applier.apply(b)
        self.classifier.decoder.finish()


def _by_sa(spi, addr) -> np.ndarray:
    """The order that groups frames by SA, (SPI, address pair), and keeps frame order
    within a group: ``np.lexsort((addr, spi))``.  Where every SPI of the batch comes
    with one address pair (the usual case), sorting by the SPI alone does, and numpy
    sorts 16-bit keys stably by radix: two passes, low half then high half, take a
    sixth of the time of the lexsort (1.4 ms against 8.4 for 90k frames)."""
    s = spi.astype(np.uint32)  # an SPI has 32 bits
    order = np.argsort((s & 0xFFFF).astype(np.uint16), kind="stable")
    order = order[np.argsort((s >> 16).astype(np.uint16)[order], kind="stable")]
    sp, a = s[order], addr[order]
    if ((sp[1:] == sp[:-1]) & (a[1:] != a[:-1])).any():  # an SPI with two address pairs
        return np.lexsort((addr, spi))
    return order


class _EspGroups:
    """The ESP frames of a batch grouped by SA direction (see the module docstring).
    ``udp``: 1 for ESP in UDP (RFC 3948), per frame."""

    proto = IPPROTO_ESP

    def __init__(self, idx, spi, addr, seq, iplen, udp, ts, frame):
        m = len(idx)
        order = _by_sa(spi, addr)
        spi, addr, seq, iplen, udp, ts, frame = (x[order] for x in (spi, addr, seq, iplen, udp, ts, frame))
        self.members = idx[order]  # batch positions, group by group
        new = np.ones(m, dtype=bool)
        new[1:] = (spi[1:] != spi[:-1]) | (addr[1:] != addr[:-1])
        starts = np.flatnonzero(new)
        self.first = self.members[starts]
        self.starts = starts.tolist()
        self.ends = self.starts[1:] + [m]
        self.spi = spi[starts].tolist()
        self.addr = addr[starts].tolist()
        self.keys = list(zip(self.spi, self.addr))  # the applier's cache keys
        self._starts, self._m = starts, m
        self.seq_a, self.frame_a, self.ts_a, self.iplen_a, self.udp_a = seq, frame, ts, iplen, udp

    def prepare(self) -> None:
        """What the applier needs besides the sorted frames (done by the applier: with
        --jobs 2 that is the other process)."""
        starts, m = self._starts, self._m
        seq, frame, ts, iplen, udp = self.seq_a, self.frame_a, self.ts_a, self.iplen_a, self.udp_a
        # a packet that does not follow its predecessor in the group (seq + 1) ends a bulk run
        brk = np.zeros(m, dtype=bool)
        brk[1:] = seq[1:] != seq[:-1] + 1
        brk[starts] = False
        self.lastbad = np.maximum.reduceat(np.where(brk, np.arange(m), -1), starts).tolist()
        # per group, for the usual case (the whole group is the SA's next run in order)
        last = np.append(starts[1:], m) - 1
        cum_len = np.concatenate(([0], np.cumsum(iplen)))
        cum_udp = np.concatenate(([0], np.cumsum(udp)))
        self.first_seq = seq[starts].tolist()
        self.last_seq, self.last_ts, self.last_frame = seq[last].tolist(), ts[last].tolist(), frame[last].tolist()
        self.total_len = (cum_len[last + 1] - cum_len[starts]).tolist()
        self.total_udp = (cum_udp[last + 1] - cum_udp[starts]).tolist()
        self.cum_len, self.cum_udp = cum_len, cum_udp
        self.count = np.diff(np.append(starts, m)).tolist()
        # the ring (see _bulk): the frames of the last (up to) 64 packets of each group,
        # from ring_from on, whose first goes to slot ring_slot
        ring_from = np.maximum(starts, last + 1 - 64)
        self.ring_from, self.ring_slot = ring_from.tolist(), (seq[ring_from] & 63).tolist()
        self.frame_arr = array("q", frame.astype(np.int64).tobytes())

    def calls_of(self, g) -> list:
        """The decoder's calls for the frames of group ``g`` (position, method, arguments)."""
        st, en = self.starts[g], self.ends[g]
        spi, addrs = self.spi[g], self.addr[g].to_bytes(8, "big")
        return [(p, "esp", (f, t, addrs, spi, q, n, u, 0)) for p, f, t, q, n, u in zip(
            self.members[st:en].tolist(), self.frame_a[st:en].tolist(), self.ts_a[st:en].tolist(),
            self.seq_a[st:en].tolist(), self.iplen_a[st:en].tolist(), self.udp_a[st:en].tolist())]

    def drop_arrays(self) -> None:
        """Forget what only the classifier needs (the batch is smaller to hand over)."""
        del self.members, self.first

    def apply(self, g, tr, addrs_of, samples, cache) -> None:
        """Apply group ``g`` to tracker ``tr``: what Tracker.esp does for each frame,
        in one update when the group is the SA's next run in order (``seq == top + 1``
        and consecutive).  ``cache``: SA entries by (spi, address pair)."""
        ck = (self.spi[g], self.addr[g])
        s = cache.get(ck)
        addrs = addrs_of(self.addr[g])
        k = (self.proto, self.spi[g], addrs)
        if s is None:
            s = tr.sas.get(k)
        self._slow(g, tr, addrs, k, s, samples)
        cache[ck] = tr.sas[k]

    def apply_known(self, ids: list[int], cache: dict) -> list[int]:
        """Apply the groups ``ids`` whose SA entry exists and that are its next run in
        order (``seq == top + 1``, consecutive): counts and bytes added, the last packet's
        time, frame and number stored, its frames put in the ring.  Returns those done."""
        get = cache.get
        keys, lastbad, first_seq, starts, ends = self.keys, self.lastbad, self.first_seq, self.starts, self.ends
        total_len, total_udp, last_ts, last_frame, last_seq = (self.total_len, self.total_udp, self.last_ts,
                                                               self.last_frame, self.last_seq)
        ring_from, ring_slot, fr = self.ring_from, self.ring_slot, self.frame_arr
        more = None if self.proto == IPPROTO_ESP else self._more  # ESP's _more is inlined below
        done = []
        for g in ids:
            s = get(keys[g])
            if s is None or lastbad[g] >= 0:
                continue
            top = s[13]
            if first_seq[g] != top + 1 or top == FORCE:
                continue
            # _bulk for a whole group, inlined: the hot loop (18k groups on the 1M capture)
            a, en = starts[g], ends[g]
            s[0] += en - a
            s[1] += total_len[g]
            s[3] = last_ts[g]
            s[5] = last_frame[g]
            s[7] = s[13] = last_seq[g]
            if more is None:
                if total_udp[g]:
                    s[8] += total_udp[g]
            else:
                more(s, g, a, en)
            r, p, ring = ring_from[g], ring_slot[g], s[14]
            k = en - r
            if p + k <= 64:
                ring[p:p + k] = fr[r:en]
            else:
                ring[p:64] = fr[r:r + 64 - p]
                ring[0:k - 64 + p] = fr[r + 64 - p:en]
            done.append(g)
        return done

    def _bulk(self, s, g, a, en) -> None:
        """Frames ``a`` to ``en`` of group ``g``, the next run in order of SA entry ``s``
        (consecutive numbers, the first ``top + 1``): what Tracker.esp / ah does for each,
        in one update: counts and bytes added, the last packet's time, frame and number
        stored, the frames of the last (up to) 64 put in the ring at ``seq & 63``."""
        whole = a == self.starts[g]
        s[0] += en - a
        s[1] += self.total_len[g] if whole else int(self.cum_len[en] - self.cum_len[a])
        s[3], s[5], s[7] = self.last_ts[g], self.last_frame[g], self.last_seq[g]  # in time order: the last
        self._more(s, g, a, en)
        s[13] = self.last_seq[g]
        # consecutive numbers: the ring's slots from that of frame r on, wrapping at 64
        r = max(a, en - 64)
        p = self.ring_slot[g] if r == self.ring_from[g] else int(self.seq_a[r]) & 63
        ring, fr, k = s[14], self.frame_arr, en - r
        if p + k <= 64:
            ring[p:p + k] = fr[r:en]
        else:
            ring[p:64] = fr[r:r + 64 - p]
            ring[0:k - 64 + p] = fr[r + 64 - p:en]

    def _slow(self, g, tr, addrs, k, s, samples) -> None:
        """Frame by frame (a new SA, its first packets, a sequence anomaly) until the
        rest of the group is the SA's next run in order."""
        st, en = self.starts[g], self.ends[g]
        spi, lastbad = self.spi[g], self.lastbad[g]
        seq = self.seq_a[st:en].tolist()
        for j in range(st, en):
            q = seq[j - st]
            if s is not None and lastbad <= j and q == s[13] + 1 and s[13] != FORCE:
                self._bulk(s, g, j, en)
                return
            self._one(tr, j, addrs, spi, q, samples, k)
            if s is None:
                s = tr.sas[k]

    def _one(self, tr, j, addrs, spi, q, samples, k) -> None:
        """Frame ``j`` (sequence number ``q``) through the tracker, as the decoder calls it."""
        if tr.esp(int(self.frame_a[j]), float(self.ts_a[j]), addrs, spi, q, int(self.iplen_a[j]),
                  bool(self.udp_a[j]), 0):
            tr.esp_sample(spi, addrs, samples[k])

    def _more(self, s, g, a, en) -> None:
        """What an SA entry counts besides packets and bytes, for the frames ``a`` to
        ``en`` of group ``g``: ESP in UDP."""
        nu = self.total_udp[g] if a == self.starts[g] else int(self.cum_udp[en] - self.cum_udp[a])
        if nu:
            s[8] += nu


class _AhGroups(_EspGroups):
    """The AH frames of a batch grouped by SA direction, as :class:`_EspGroups`;
    instead of ESP in UDP, the next header of each frame (``nh``), which an AH
    SA entry counts (Tracker.ah)."""

    proto = IPPROTO_AH

    def prepare(self) -> None:
        super().prepare()
        nh, starts = self.udp_a, self._starts
        first = nh[starts]
        mixed = np.maximum.reduceat(nh != np.repeat(first, self.count), starts)
        # per group: its one next header, or -1 when they differ (counted frame by frame)
        self.nh_one = np.where(mixed, -1, first).tolist()
        self.nh_l = None

    def _more(self, s, g, a, en) -> None:
        inner = s[10]
        one = self.nh_one[g]
        if one >= 0:
            inner[one] = inner.get(one, 0) + (en - a)
            return
        if self.nh_l is None:
            self.nh_l = self.udp_a.tolist()
        for x in self.nh_l[a:en]:
            inner[x] = inner.get(x, 0) + 1

    def _one(self, tr, j, addrs, spi, q, samples, k) -> None:
        tr.ah(int(self.frame_a[j]), float(self.ts_a[j]), addrs, spi, q, int(self.iplen_a[j]), int(self.udp_a[j]))

    def calls_of(self, g) -> list:
        st, en = self.starts[g], self.ends[g]
        spi, addrs = self.spi[g], self.addr[g].to_bytes(8, "big")
        return [(p, "ah", (f, t, addrs, spi, q, n, nh)) for p, f, t, q, n, nh in zip(
            self.members[st:en].tolist(), self.frame_a[st:en].tolist(), self.ts_a[st:en].tolist(),
            self.seq_a[st:en].tolist(), self.iplen_a[st:en].tolist(), self.udp_a[st:en].tolist())]


class _FlowGroups:
    """The TCP and UDP frames of a batch grouped by flow, both directions together.
    ``prot``: the SPI of the AH that protected the frame, -1 for none (a new flow
    records what protected its first frame).

    The applier applies all its groups at once, with numpy (:meth:`apply`), through
    the table of :class:`~ipsecpcap.tracker.Flows` (a
    :class:`~ipsecpcap.keytable.KeyTable`) from protocol and the two endpoints to
    every IPv4 flow's row and the direction of its initiator, which the tracker
    keeps for the flows it makes itself too.  A group whose flow the table does not
    know is a new flow, made from its first frame; then every group's frames (but the
    first of a new flow's) are added to the flow columns.  No other frame of the batch touches
    those flows, so this can happen before the batch's calls; a new flow's row is
    then not in the order of its first frame among the flows the calls make, which
    nothing depends on (the flows table is sorted by first frame).  New flows of
    the batch take their rows in the order of their first frames."""

    def __init__(self, idx, pr, addr, sp, dp, iplen, flags, ts, frame, prot):
        m = len(idx)
        ea, eb = endpoint_arrays(addr, sp, dp)
        lo, hi = np.minimum(ea, eb), np.maximum(ea, eb)
        order = np.lexsort((hi, lo, pr))  # stable: frame order within a group
        idx, pr, addr, sp, dp, lo, hi, iplen, flags, ts, frame, prot = (
            x[order] for x in (idx, pr, addr, sp, dp, lo, hi, iplen, flags, ts, frame, prot))
        d = (ea > eb)[order]  # which end sent it: 1 when the source is the higher endpoint
        self.members = idx
        self._frames = (pr, addr, sp, dp, iplen, flags, ts, frame, prot)  # for calls_of
        new = np.ones(m, dtype=bool)
        new[1:] = (pr[1:] != pr[:-1]) | (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])
        starts = np.flatnonzero(new)
        self.first = idx[starts]
        self.starts = starts
        self._sorted = (m, pr.astype(np.int64), addr, sp, dp, d, lo, hi, iplen, flags, ts, frame, prot)

    @property
    def keys(self) -> list[tuple[int, int, int]]:
        """Each group's (proto, lo, hi), as :func:`_flow_key` makes them."""
        pr, lo, hi = self._sorted[1], self._sorted[6], self._sorted[7]
        s = self.starts
        return list(zip(pr[s].tolist(), lo[s].tolist(), hi[s].tolist()))

    def calls_of(self, g) -> list:
        """The decoder's calls for the frames of group ``g`` (position, method, arguments)."""
        st = int(self.starts[g])
        en = int(self.starts[g + 1]) if g + 1 < len(self.starts) else len(self.members)
        pr, addr, sp, dp, iplen, flags, ts, frame, prot = (x[st:en].tolist() for x in self._frames)
        return [(p, "flow", (fr, t, x, a.to_bytes(8, "big"), s, d, n, fl if x == 6 else 0,
                             None if ah < 0 else _spi_text(ah)))
                for p, x, a, s, d, n, fl, t, fr, ah in zip(self.members[st:en].tolist(), pr, addr, sp, dp, iplen,
                                                           flags, ts, frame, prot)]

    def drop_arrays(self) -> None:
        """Forget what only the classifier needs (the batch is smaller to hand over)."""
        del self.members, self._frames, self.first

    def apply(self, ids: np.ndarray, fl) -> None:
        """Apply the groups ``ids`` (those the batch applies, not turned into calls) to
        the flow columns ``fl`` (the tracker's :class:`Flows`), all at once.  Its
        ``table`` knows every IPv4 flow of the tracker (those the decoder's calls made
        too): a group it does not know is a new flow."""
        m, pr, addr, sp, dp, d, lo, hi, iplen, flags, ts, frame, prot = self._sorted
        del self._sorted
        starts = self.starts
        k1, k2 = table_words(pr[starts], lo[starts], hi[starts])
        val = fl.table.get(k1[ids], k2[ids])  # flow row * 2 + the initiator's d, -1: not known
        new = ids[val < 0]
        known = val >= 0
        g, rows, fd = ids[known], val[known] >> 1, val[known] & 1
        use = np.ones(m, dtype=bool)
        if len(new):
            new = new[np.argsort(frame[starts[new]], kind="stable")]  # rows in the order the flows began
            first = starts[new]
            new_rows, new_fd = self._create(fl, pr[first], addr[first], sp[first], dp[first], iplen[first],
                                            flags[first], ts[first], frame[first], prot[first])
            use[first] = False  # applied: the rest of those groups is summed below
            g, rows, fd = np.concatenate((g, new)), np.concatenate((rows, new_rows)), np.concatenate((fd, new_fd))
        _add_flows(fl, _flow_sums(starts, m, pr, d, use, iplen, flags, ts, frame), g, rows, fd)

    @staticmethod
    def _create(fl, pr, addr, sp, dp, iplen, flags, ts, frame, prot) -> tuple:
        """New flows from their first frames (what :meth:`Tracker.flow` does for the first
        frame of a flow, for many at once); returns their rows and each one's initiator's d,
        as the table of flows keeps it (a flow whose two ends are one has only d 0).
        The sender of the first frame is the initiator, except for a SYN-ACK, which the
        responder sends (the SYN was not captured); TCP: what the first frame tells."""
        tcp = pr == 6
        f = np.where(tcp, flags, 0)
        synack = (f & (_SYN | _ACK)) == (_SYN | _ACK)
        swapped = ((addr & np.uint64(0xFFFFFFFF)) << np.uint64(32)) | (addr >> np.uint64(32))
        key_addr = np.where(synack, swapped, addr)
        key_sp, key_dp = np.where(synack, dp, sp), np.where(synack, sp, dp)
        one, zero = np.ones(len(pr), dtype=np.int64), np.zeros(len(pr), dtype=np.int64)
        iplen = iplen.astype(np.int64)
        bits = (np.where((f & _SYN != 0) & (f & _ACK == 0), TCP_SYN_FWD, 0) | np.where(f & _RST, TCP_RST_FWD, 0)
                | np.where(f & _FIN, TCP_FIN_FWD, 0)  # Tracker._tcp_fwd of the first frame
                | np.where(tcp & ((f & (_SYN | _ACK | _RST)) == _SYN), TCP_FIRST_SYN, 0))
        bits = np.where(synack, TCP_SYNACK_REV, bits)
        protected = [None if a < 0 else _spi_text(a) for a in prot.tolist()]
        return fl.extend(pr, key_addr, key_sp, key_dp, np.where(synack, zero, one), np.where(synack, one, zero),
                         np.where(synack, 0, iplen), np.where(synack, iplen, 0), ts, frame, bits, protected)


def _flow_sums(starts, m, pr, d, use, iplen, flags, ts, frame) -> tuple:
    """Per group, over its frames marked in ``use``: packets and bytes of each end
    (``d`` 1, ``d`` 0), the last frame and its time, and for TCP what
    ``Tracker._tcp_fwd`` / ``_tcp_rev`` would observe from each end, the position of
    the first SYN-ACK and of the last ACK from each end."""
    add = np.add.reduceat
    u1 = d & use
    u0 = ~d & use
    last = np.append(starts[1:], m) - 1
    sums = (add(u1.astype(np.int64), starts), add(u0.astype(np.int64), starts),
            add(np.where(u1, iplen, 0), starts), add(np.where(u0, iplen, 0), starts), ts[last], frame[last],
            pr[starts] == 6)
    is_tcp = pr == 6
    if not is_tcp.any():
        return sums + (None,)
    f = np.where(is_tcp & use, flags, 0)
    syn, ack, rst, fin = (f & _SYN) != 0, (f & _ACK) != 0, (f & _RST) != 0, (f & _FIN) != 0
    # Tracker._tcp_fwd / _tcp_rev, for every packet as if sent by the initiator / the responder
    fwd = np.where(syn & ~ack, TCP_SYN_FWD, 0) | np.where(rst, TCP_RST_FWD, 0) | np.where(fin, TCP_FIN_FWD, 0)
    rev = np.where(syn & ack, TCP_SYNACK_REV, 0) | np.where(rst, TCP_RST_REV, 0) | np.where(fin, TCP_FIN_REV, 0)
    pos = np.arange(m)
    orr = np.bitwise_or.reduceat
    synack = syn & ack
    tcp = (orr(np.where(u0, fwd, 0), starts), orr(np.where(u1, fwd, 0), starts),
           orr(np.where(u0, rev, 0), starts), orr(np.where(u1, rev, 0), starts),
           np.minimum.reduceat(np.where(u0 & synack, pos, _NONE), starts),
           np.minimum.reduceat(np.where(u1 & synack, pos, _NONE), starts),
           np.maximum.reduceat(np.where(u0 & ack, pos, -1), starts),
           np.maximum.reduceat(np.where(u1 & ack, pos, -1), starts))
    return sums + (tcp,)


def _add_flows(fl, sums, g, rows, fd) -> None:
    """Add the sums of groups ``g`` (:func:`_flow_sums`) to the flow ``rows`` (distinct;
    ``fd``: 1 where the frames with d 1 are the initiator's), what Tracker.flow does
    frame by frame.  The timestamps are in order: a group's last frame is the flow's."""
    if not len(g):
        return
    n1, n0, b1, b0, last_ts, last_frame, is_tcp, tcp = sums
    pk_fwd, pk_rev, by_fwd, by_rev, lts, lfr, bits = fl.views()
    fd = fd.astype(bool)
    n1, n0, b1, b0 = n1[g], n0[g], b1[g], b0[g]
    pk_fwd[rows] += np.where(fd, n1, n0)
    pk_rev[rows] += np.where(fd, n0, n1)
    by_fwd[rows] += np.where(fd, b1, b0)
    by_rev[rows] += np.where(fd, b0, b1)
    lts[rows] = last_ts[g]
    lfr[rows] = last_frame[g]
    if tcp is None:
        return
    t = is_tcp[g]
    g, rows, fd = g[t], rows[t], fd[t]
    fwd0, fwd1, rev0, rev1, synack0, synack1, ack0, ack1 = (x[g] for x in tcp)
    new = np.where(fd, fwd1 | rev0, fwd0 | rev1)  # the initiator's frames seen forward, the responder's back
    last_ack = np.where(fd, ack1, ack0)  # the initiator's
    first_synack = np.where(fd, synack0, synack1)  # the responder's
    old = bits[rows]
    # a packet from the initiator with ACK after the SYN-ACK: the handshake completed
    done = (last_ack >= 0) & (((old & TCP_SYNACK_REV) != 0) | (first_synack < last_ack))
    bits[rows] = old | new | np.where(done, TCP_DATA_FWD, 0)
