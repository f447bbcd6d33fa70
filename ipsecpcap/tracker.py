"""State: the aggregating sink of the fast path, and the partial result.

A :class:`Tracker` receives events from :class:`ipsecpcap.decode.Decoder` and
keeps one small mutable list per SA direction and one row per flow (in
columns, :class:`Flows`) -- never one record per packet -- plus the IKE
messages, which are rare.  Memory grows
with the number of SAs and flows, not with the number of packets; an IKE
message costs a few hundred bytes (see :meth:`Tracker.ike`).

A tracker is the partial result of one capture (or one slice of one): two
trackers merge with :meth:`Tracker.merge`, the earlier one first, which is
what a parallel or distributed run does with the slices it made.  The tables
are built from a (merged) tracker by :mod:`ipsecpcap.tables`.
"""
from __future__ import annotations

from array import array
from typing import NamedTuple

import numpy as np

from .dissectors.records import IkeMessage, IkeSummary
from .keytable import KeyTable, endpoint_arrays, flow_words, table_words
from .sequence import CAPTURE_SHIFT, FORCE, SeqState, SeqSummary, new_ring

# indexes into an SA entry (a list, for cheap in-place updates in the hot path)
SA_PACKETS, SA_BYTES, SA_FIRST_TS, SA_LAST_TS, SA_FIRST_FRAME, SA_LAST_FRAME, SA_SEQ_FIRST, \
    SA_SEQ_LAST, SA_ENCAP, SA_FRAGMENTS, SA_INNER, SA_FIRST_CAP, SA_LAST_CAP, \
    SA_SEQ_TOP, SA_SEQ_RING, SA_SEQ_STATE = range(16)
# anti-replay (ipsecpcap.sequence): SA_SEQ_TOP is the highest sequence number
# of the in-order run (a packet with SA_SEQ_TOP + 1 is the next in order; -2:
# none is, every packet goes to the slow path), SA_SEQ_RING 64 frames indexed
# by seq & 63, SA_SEQ_STATE the rest of the state (a SeqState)

# TCP observations kept per flow (bits of Flows.tcp)
TCP_FIRST_SYN = 1  # the first packet seen was a SYN without ACK from the initiator
TCP_SYN_FWD = 2  # a SYN (no ACK) from the initiator
TCP_SYNACK_REV = 4  # a SYN-ACK from the responder
TCP_RST_REV = 8  # a RST from the responder
TCP_RST_FWD = 16
TCP_FIN_FWD = 32
TCP_FIN_REV = 64
TCP_DATA_FWD = 128  # a packet from the initiator after the SYN-ACK (handshake completed)
ICMP_ERROR_REV = 256  # an ICMP error came back for a packet of the initiator (e.g. port unreachable)

_SYN, _ACK, _RST, _FIN = 0x02, 0x10, 0x04, 0x01

IPPROTO_ESP, IPPROTO_AH, IPPROTO_TCP = 50, 51, 6
SAMPLE = 256  # bytes kept of each end of an ESP SA's first packet


def swap(addrs: bytes) -> bytes:
    """Source||destination -> destination||source."""
    h = len(addrs) >> 1
    return addrs[h:] + addrs[:h]


V1_AGGRESSIVE = 4  # IKEv1 exchange type (RFC 2408 4.1): its messages in clear feed ipsecpcap.pskhashes


def _share_proposals(payloads, shared) -> None:
    """The proposals of each SA payload replaced by the equal tuple seen before, if any: the
    same offer comes back in every IKE SA of a configuration (nearly 1 KB each)."""
    for p in payloads:
        props = p.fields.get("proposals")
        if props:
            try:
                p.fields["proposals"] = shared(props, props)
            except TypeError:  # (not hashable: kept as it is)
                pass


class IkeEvent(NamedTuple):
    """One IKE message as seen on the wire (the tracker's only per-message record; a named
    tuple: the quickest record to make, and long captures carry tens of thousands)."""

    capture: int  # index into Tracker.captures
    frame: int
    ts: float
    addrs: bytes
    sport: int
    dport: int
    marker: bool  # came with the RFC 3948 non-ESP marker (UDP 4500)
    fragments: int  # IP fragments it was reassembled from (0: not fragmented)
    msg: IkeSummary | IkeMessage  # what the tracker keeps: an IkeSummary (tests may give a whole IkeMessage)
    raw: bytes  # the message as sent (non-ESP marker removed), for decryption; b"": see Tracker.ike


class Flows:
    """The flows of a tracker: one row each, in columns.

    Rows are numbered in the order the flows appeared.  A flow is keyed by
    (proto, addrs, sport, dport), the initiator's end first; the key is kept
    in columns too (``proto``, ``sport``, ``dport``, and ``addr``, the IPv4
    address pair as one 64-bit number), and :meth:`find` gives a packet's flow
    and whether its sender is the initiator.  An IPv4 flow is found through
    ``table``, a :class:`~ipsecpcap.keytable.KeyTable` keyed by the protocol
    and the two ends whichever sent the packet (:func:`~ipsecpcap.keytable.table_words`),
    whose value is the row times two plus which end is the initiator's (1: the
    higher); the table is also how :mod:`ipsecpcap.vector` finds a whole
    batch's flows at once.  Any other flow (IPv6) is found through ``other``, a
    dict from its key, and its addresses are in ``wide`` (row -> addrs).  A
    flow costs about 190 bytes (columns about 100, the table about 90), where
    a dict keyed by tuples cost about 340 with the table beside it.

    Each column is an ``array.array``, updated in place one packet at a time
    by :meth:`Tracker.flow`, and a whole batch at a time through numpy views
    (:meth:`views`, used by :mod:`ipsecpcap.vector`).  Columns: packets and
    bytes from the initiator (``pk_fwd``, ``by_fwd``) and from the responder
    (``pk_rev``, ``by_rev``); first and last packet (``first_ts``,
    ``last_ts``, ``first_frame``, ``last_frame``, and the captures they were
    in, ``first_cap``, ``last_cap``); the TCP and ICMP observations (``tcp``,
    the ``TCP_*`` / ``ICMP_ERROR_REV`` bits); and, a list, what protected the
    first packet (``protected``: an AH SPI as text, or None)."""

    INTS = ("pk_fwd", "pk_rev", "by_fwd", "by_rev", "first_frame", "last_frame", "tcp", "first_cap", "last_cap")
    FLOATS = ("first_ts", "last_ts")
    KEYS = ("proto", "sport", "dport", "addr")
    __slots__ = ("table", "other", "wide", "protected", "_recent") + KEYS + INTS + FLOATS
    RECENT = 16384  # flows found lately, one packet at a time (at most ~3 MB): see find()

    def __init__(self):
        self.table = KeyTable(sparse=2)
        self.other: dict[tuple, int] = {}
        self.wide: dict[int, bytes] = {}
        self._recent: dict[tuple, tuple[int, bool]] = {}
        self.protected: list[str | None] = []
        self.proto, self.sport, self.dport, self.addr = array("B"), array("I"), array("I"), array("Q")
        for name in self.INTS:
            setattr(self, name, array("q"))
        for name in self.FLOATS:
            setattr(self, name, array("d"))

    def __len__(self) -> int:
        return len(self.protected)

    def find(self, proto: int, addrs: bytes, sport: int, dport: int) -> tuple[int, bool] | None:
        """The flow of a packet (``addrs``, ``sport``, ``dport``: the sender's end first):
        its row and whether the sender is the initiator; None if there is none yet.

        One packet at a time, a probe of the table costs about 2.4 us where a dict of
        tuples took 0.1-0.5 us, so the flows found lately are kept in a dict too (at most
        ``RECENT``, then it starts again; a flow's row and initiator never change, and a
        miss is not kept): a flow's packets come in runs."""
        recent = self._recent
        key = (proto, addrs, sport, dport)
        found = recent.get(key)
        if found is not None:
            return found
        words = flow_words(proto, addrs, sport, dport)
        if words is not None:
            k1, k2, higher = words
            v = self.table.get_one(k1, k2)
            if v < 0:
                return None
            if len(recent) >= self.RECENT:
                recent.clear()
            found = recent[key] = v >> 1, (v & 1) == higher  # (a row and its initiator never change)
            return found
        i = self.other.get(key)
        if i is not None:
            return i, True
        i = self.other.get((proto, swap(addrs), dport, sport))
        return None if i is None else (i, False)

    def key(self, i: int) -> tuple:
        """Row ``i``'s key: (proto, addrs, sport, dport), the initiator's end first."""
        addrs = self.wide.get(i) if self.wide else None
        return self.proto[i], addrs if addrs is not None else self.addr[i].to_bytes(8, "big"), \
            self.sport[i], self.dport[i]

    def keys(self):
        """Every row's key, in row order."""
        wide = self.wide
        for i, (proto, a, sport, dport) in enumerate(zip(self.proto, self.addr, self.sport, self.dport)):
            addrs = wide.get(i) if wide else None
            yield proto, addrs if addrs is not None else a.to_bytes(8, "big"), sport, dport

    def add(self, key: tuple, pk_fwd: int, pk_rev: int, by_fwd: int, by_rev: int, ts: float, frame: int,
            tcp: int, protected: str | None, cap: int = 0) -> int:
        """A new flow (``key`` not found) with one packet (or, merging, a flow's totals);
        returns its row."""
        i = len(self.protected)
        proto, addrs, sport, dport = key
        words = flow_words(proto, addrs, sport, dport)
        if words is not None:
            k1, k2, higher = words
            self.table.put(k1, k2, i << 1 | higher)
            self.addr.append(int.from_bytes(addrs, "big"))
        else:
            self.other[key] = i
            self.wide[i] = addrs
            self.addr.append(0)
        self.proto.append(proto)
        self.sport.append(sport)
        self.dport.append(dport)
        self.protected.append(protected)
        self.pk_fwd.append(pk_fwd)
        self.pk_rev.append(pk_rev)
        self.by_fwd.append(by_fwd)
        self.by_rev.append(by_rev)
        self.first_ts.append(ts)
        self.last_ts.append(ts)
        self.first_frame.append(frame)
        self.last_frame.append(frame)
        self.tcp.append(tcp)
        self.first_cap.append(cap)
        self.last_cap.append(cap)
        return i

    def extend(self, proto, addr, sport, dport, pk_fwd, pk_rev, by_fwd, by_rev, ts, frame, tcp,
               protected: list) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`add` for many new IPv4 flows (not found; distinct), the keys and values as
        numpy arrays (``addr``: address pairs as unsigned 64-bit, the initiator's first);
        returns their rows and, as the table keeps it, whether each one's initiator is the
        higher end (1) or not (0)."""
        n, m = len(self.protected), len(proto)
        rows = np.arange(n, n + m, dtype=np.int64)
        a, b = endpoint_arrays(addr, sport, dport)
        k1, k2 = table_words(proto.astype(np.int64), np.minimum(a, b), np.maximum(a, b))
        higher = (a > b).astype(np.int64)
        self.table.put_many(k1, k2, rows << 1 | higher)
        self.protected.extend(protected)
        i8, f8 = np.int64, np.float64
        for name, values, dtype in (("proto", proto, np.uint8), ("sport", sport, np.uint32),
                                    ("dport", dport, np.uint32), ("addr", addr, np.uint64),
                                    ("pk_fwd", pk_fwd, i8), ("pk_rev", pk_rev, i8), ("by_fwd", by_fwd, i8),
                                    ("by_rev", by_rev, i8), ("first_ts", ts, f8), ("last_ts", ts, f8),
                                    ("first_frame", frame, i8), ("last_frame", frame, i8), ("tcp", tcp, i8),
                                    ("first_cap", np.zeros(m, i8), i8), ("last_cap", np.zeros(m, i8), i8)):
            getattr(self, name).frombytes(np.ascontiguousarray(values, dtype=dtype).tobytes())
        return rows, higher

    def row(self, i: int) -> dict:
        """Row ``i`` as a dict of its columns (for tests and merging)."""
        out = {name: getattr(self, name)[i] for name in self.INTS + self.FLOATS}
        out["protected"] = self.protected[i]
        return out

    def column(self, name: str) -> np.ndarray:
        """A numpy view of one column (``KEYS``, ``INTS``, ``FLOATS``), of its array's own
        type.  While a view lives, no flow can be added (an ``array.array`` that exports its
        buffer cannot grow): drop it before."""
        values = getattr(self, name)
        return np.frombuffer(values, dtype=values.typecode)

    def views(self) -> tuple:
        """:meth:`column` of ``pk_fwd, pk_rev, by_fwd, by_rev, last_ts, last_frame, tcp``, to
        update many rows at once."""
        return tuple(map(self.column, ("pk_fwd", "pk_rev", "by_fwd", "by_rev", "last_ts", "last_frame", "tcp")))


class Tracker:
    """Aggregates the decoder's events.  See the module docstring."""

    def __init__(self, capture: str = "-", keep_ike_ciphertext: bool = True):
        self.captures: list[str] = [capture]
        self.sas: dict[tuple, list] = {}  # (proto, spi, addrs) -> SA entry
        self.flows = Flows()
        self.ike_events: list[IkeEvent] = []
        # the first packet of each ESP SA direction, from the SPI on: (length, head, tail),
        # for the NULL-encryption heuristic (ipsecpcap.nullesp); one per SA, never per packet
        self.esp_samples: dict[tuple, tuple[int, bytes, bytes]] = {}
        self.keepalives: dict[tuple, list] = {}  # (addrs, sport, dport) -> [count, first_ts, last_ts]
        self.counts: dict[str, int] = {}  # frame accounting, filled in by the decoder
        self.reassembly: dict[str, int] = {}
        self.frames = 0  # records in the capture(s)
        # per capture: (frames, first_ts, last_ts) as its reading found them, or None when not known
        # (ipsecpcap.export reports them without reading the capture again)
        self.capture_reads: list[tuple[int, float | None, float | None] | None] = [None]
        self.first_ts: float | None = None
        self.last_ts: float | None = None
        self.warnings: list[str] = []
        # the raw bytes of IKE messages are of use to whoever has IKE keys (ipsecpcap.ikedecrypt);
        # without, only those psk-hashes reads are kept (see ike())
        self.keep_ike_ciphertext = keep_ike_ciphertext
        # one object for each SPI, address pair, port and payload name list, however many
        # messages carry it (a long capture repeats the same few, message after message)
        self._shared: dict = {}

    # ------------------------------------------------------------------ sink: hot path
    def esp(self, frame, ts, addrs, spi, seq, length, encap, fragments):
        k = (IPPROTO_ESP, spi, addrs)
        s = self.sas.get(k)
        if s is None:
            self.sas[k] = s = [1, length, ts, ts, frame, frame, seq, seq, 1 if encap else 0, fragments, None, 0, 0,
                               FORCE, new_ring(), SeqState()]
            s[13] = s[15].packet(seq, frame, FORCE, s[14])
            return True  # new SA: the decoder hands over a sample of the payload (esp_sample)
        s[0] += 1
        s[1] += length
        if ts >= s[3]:
            s[3] = ts
            s[5] = frame
            s[7] = seq
        elif ts < s[2]:
            s[2] = ts
            s[4] = frame
            s[6] = seq
        if encap:
            s[8] += 1
        if fragments:
            s[9] += fragments
        # anti-replay (ipsecpcap.sequence): the next in order costs a compare and two stores
        if seq == s[13] + 1:
            s[13] = seq
            s[14][seq & 63] = frame
        else:
            s[13] = s[15].packet(seq, frame, s[13], s[14])

    def esp_sample(self, spi, addrs, packet) -> None:
        """The first packet of a new ESP SA direction (``packet`` from the SPI to the end captured)."""
        self.esp_samples[(IPPROTO_ESP, spi, addrs)] = (len(packet), bytes(packet[:SAMPLE]), bytes(packet[-SAMPLE:]))

    def ah(self, frame, ts, addrs, spi, seq, length, next_header):
        k = (IPPROTO_AH, spi, addrs)
        s = self.sas.get(k)
        if s is None:
            self.sas[k] = s = [1, length, ts, ts, frame, frame, seq, seq, 0, 0, {next_header: 1}, 0, 0,
                               FORCE, new_ring(), SeqState()]
            s[13] = s[15].packet(seq, frame, FORCE, s[14])
            return
        s[0] += 1
        s[1] += length
        if ts >= s[3]:
            s[3] = ts
            s[5] = frame
            s[7] = seq
        elif ts < s[2]:
            s[2] = ts
            s[4] = frame
            s[6] = seq
        inner = s[10]
        inner[next_header] = inner.get(next_header, 0) + 1
        if seq == s[13] + 1:
            s[13] = seq
            s[14][seq & 63] = frame
        else:
            s[13] = s[15].packet(seq, frame, s[13], s[14])

    def flow(self, frame, ts, proto, addrs, sport, dport, length, tcp_flags, protected_by):
        """One packet of a flow.  Returns the flow's row and whether this packet's sender
        is its initiator (the bulk path of :mod:`ipsecpcap.vector` goes on from there)."""
        fl = self.flows
        found = fl.find(proto, addrs, sport, dport)
        if found is None:
            # a new flow: the sender is the initiator, except for a SYN-ACK, which
            # the responder sends (the SYN was not captured)
            if proto == IPPROTO_TCP and tcp_flags & (_SYN | _ACK) == _SYN | _ACK:
                return fl.add((proto, swap(addrs), dport, sport), 0, 1, 0, length, ts, frame, TCP_SYNACK_REV,
                              protected_by), False
            bits = 0
            if proto == IPPROTO_TCP:
                bits = _tcp_fwd(tcp_flags, 0)
                if tcp_flags & (_SYN | _ACK | _RST) == _SYN:
                    bits |= TCP_FIRST_SYN
            return fl.add((proto, addrs, sport, dport), 1, 0, length, 0, ts, frame, bits, protected_by), True
        i, forward = found
        if forward:
            fl.pk_fwd[i] += 1
            fl.by_fwd[i] += length
            if ts >= fl.last_ts[i]:
                fl.last_ts[i] = ts
                fl.last_frame[i] = frame
            if proto == IPPROTO_TCP:
                fl.tcp[i] |= _tcp_fwd(tcp_flags, fl.tcp[i])
            return i, True
        fl.pk_rev[i] += 1
        fl.by_rev[i] += length
        if ts >= fl.last_ts[i]:
            fl.last_ts[i] = ts
            fl.last_frame[i] = frame
        if proto == IPPROTO_TCP:
            fl.tcp[i] |= _tcp_rev(tcp_flags)
        return i, False

    # ------------------------------------------------------------------ sink: rare events
    def ike(self, frame, ts, addrs, sport, dport, msg, marker, fragments, raw):
        """One IKE message (``msg``: its IkeSummary or IkeMessage, ``raw``: its bytes).

        Kept: its IkeSummary -- the payloads in clear, not the encrypted one --
        with the values that repeat from message to message shared (SPIs,
        addresses, ports, lengths, payload name lists, the proposals of SA
        payloads in clear), and its bytes where something reads them: with
        ``keep_ike_ciphertext`` (IKE keys given: decryption) every message's,
        else only those of IKEv1 Aggressive Mode messages in clear
        (:mod:`ipsecpcap.pskhashes`).  About 300 bytes for an encrypted
        message."""
        shared = self._shared.setdefault
        m = msg if type(msg) is IkeSummary else IkeSummary.of(msg)
        if m.payloads:
            _share_proposals(m.payloads, shared)
        m = IkeSummary(m.version, m.minor_version, shared(m.ispi, m.ispi), shared(m.rspi, m.rspi), m.next_payload,
                       m.exchange_type, m.exchange, m.flags, m.mid, shared(m.length, m.length), m.encrypted,
                       shared(m.payload_names, m.payload_names), m.payloads, m.anomalies)
        if not self.keep_ike_ciphertext and (m.encrypted or m.version != 1 or m.exchange_type != V1_AGGRESSIVE):
            raw = b""
        self.ike_events.append(IkeEvent(0, frame, ts, shared(addrs, addrs), shared(sport, sport),
                                        shared(dport, dport), marker, fragments, m, raw))

    def icmp_error(self, frame, ts, addrs, proto, icmp_type, code, quoted, quoted_flow):
        """An ICMP error quoting a packet of a known flow marks that flow."""
        if quoted_flow is None:
            return
        found = self.flows.find(*quoted_flow)
        if found is not None and found[1]:  # the quoted packet was the initiator's
            self.flows.tcp[found[0]] |= ICMP_ERROR_REV

    def truncated_ipsec(self, frame, ts, addrs, protocol, spi, encap):
        """An ESP header cut short by the snap length: counted as malformed
        by the decoder; too little to update an SA."""

    def keepalive(self, frame, ts, addrs, sport, dport):
        k = (addrs, sport, dport)
        e = self.keepalives.get(k)
        if e is None:
            self.keepalives[k] = [1, ts, ts]
        else:
            e[0] += 1
            e[2] = max(e[2], ts)

    # ------------------------------------------------------------------ partial results
    def merge(self, other: "Tracker") -> "Tracker":
        """Fold ``other`` (a later slice or capture) into this tracker.

        ``other`` is left as it was.  The sequence analysis of an SA seen in
        both re-checks the boundary (see :meth:`ipsecpcap.sequence.SeqState.merge`)."""
        base = len(self.captures)
        self.captures.extend(other.captures)
        shift = base << CAPTURE_SHIFT
        for k, o in other.sas.items():
            o = list(o)
            o[SA_FIRST_CAP] += base
            o[SA_LAST_CAP] += base
            # the other slice's sequence state, renumbered to our captures
            o[SA_SEQ_STATE] = theirs = o[SA_SEQ_STATE].clone(shift)
            theirs.settle(o[SA_SEQ_TOP])
            o[SA_SEQ_RING] = array("q", [w + shift for w in o[SA_SEQ_RING]])
            s = self.sas.get(k)
            if s is None:
                o[SA_SEQ_TOP] = theirs.top()
                self.sas[k] = o
                continue
            mine = s[SA_SEQ_STATE]
            mine.settle(s[SA_SEQ_TOP])
            mine.merge(theirs, s[SA_SEQ_RING], o[SA_SEQ_RING])
            s[SA_SEQ_TOP] = mine.top()
            s[SA_PACKETS] += o[SA_PACKETS]
            s[SA_BYTES] += o[SA_BYTES]
            if o[SA_FIRST_TS] < s[SA_FIRST_TS]:
                s[SA_FIRST_TS], s[SA_FIRST_FRAME], s[SA_SEQ_FIRST], s[SA_FIRST_CAP] = \
                    o[SA_FIRST_TS], o[SA_FIRST_FRAME], o[SA_SEQ_FIRST], o[SA_FIRST_CAP]
            if o[SA_LAST_TS] >= s[SA_LAST_TS]:
                s[SA_LAST_TS], s[SA_LAST_FRAME], s[SA_SEQ_LAST], s[SA_LAST_CAP] = \
                    o[SA_LAST_TS], o[SA_LAST_FRAME], o[SA_SEQ_LAST], o[SA_LAST_CAP]
            s[SA_ENCAP] += o[SA_ENCAP]
            s[SA_FRAGMENTS] += o[SA_FRAGMENTS]
            if o[SA_INNER]:
                inner = s[SA_INNER] if s[SA_INNER] is not None else {}
                for nh, n in o[SA_INNER].items():
                    inner[nh] = inner.get(nh, 0) + n
                s[SA_INNER] = inner
        for k, v in other.esp_samples.items():
            self.esp_samples.setdefault(k, v)
        mine, theirs = self.flows, other.flows
        for j, k in enumerate(theirs.keys()):
            o = theirs.row(j)
            found = mine.find(*k)
            if found is not None:
                _merge_flow(mine, found[0], o, base, reverse=not found[1])
                continue
            i = mine.add(k, o["pk_fwd"], o["pk_rev"], o["by_fwd"], o["by_rev"], o["first_ts"], o["first_frame"],
                         o["tcp"], o["protected"], o["first_cap"] + base)
            mine.last_ts[i], mine.last_frame[i], mine.last_cap[i] = o["last_ts"], o["last_frame"], o["last_cap"] + base
        for ev in other.ike_events:
            self.ike_events.append(IkeEvent(ev.capture + base, ev.frame, ev.ts, ev.addrs, ev.sport, ev.dport,
                                     ev.marker, ev.fragments, ev.msg, ev.raw))
        for k, o in other.keepalives.items():
            e = self.keepalives.get(k)
            if e is None:
                self.keepalives[k] = list(o)
            else:
                e[0] += o[0]
                e[1] = min(e[1], o[1])
                e[2] = max(e[2], o[2])
        for table, src in ((self.counts, other.counts), (self.reassembly, other.reassembly)):
            for k, n in src.items():
                table[k] = table.get(k, 0) + n
        self.frames += other.frames
        self.capture_reads.extend(other.capture_reads)
        if other.first_ts is not None:
            self.first_ts = other.first_ts if self.first_ts is None else min(self.first_ts, other.first_ts)
            self.last_ts = other.last_ts if self.last_ts is None else max(self.last_ts, other.last_ts)
        self.warnings.extend(other.warnings)
        return self


def sa_sequence(entry: list) -> SeqSummary:
    """The anti-replay and sequence analysis of one SA entry (``Tracker.sas`` value)."""
    return entry[SA_SEQ_STATE].summary(entry[SA_SEQ_RING], entry[SA_SEQ_TOP], entry[SA_PACKETS])


def _tcp_fwd(flags: int, bits: int) -> int:
    """TCP observations from a packet sent by the initiator."""
    b = 0
    if flags & _SYN and not flags & _ACK:
        b |= TCP_SYN_FWD
    if flags & _RST:
        b |= TCP_RST_FWD
    if flags & _FIN:
        b |= TCP_FIN_FWD
    if bits & TCP_SYNACK_REV and flags & _ACK:
        b |= TCP_DATA_FWD
    return b


def _tcp_rev(flags: int) -> int:
    """TCP observations from a packet sent by the responder."""
    b = 0
    if flags & _SYN and flags & _ACK:
        b |= TCP_SYNACK_REV
    if flags & _RST:
        b |= TCP_RST_REV
    if flags & _FIN:
        b |= TCP_FIN_REV
    return b


_SWAP_BITS = ((TCP_RST_REV, TCP_RST_FWD), (TCP_FIN_REV, TCP_FIN_FWD))
# ICMP_ERROR_REV has no forward twin: from the other end it is dropped


def _merge_flow(fl: Flows, i: int, o: dict, base: int, reverse: bool) -> None:
    """Merge flow ``o`` (a later slice's row, :meth:`Flows.row`; its captures numbered
    from ``base`` on) into row ``i``; ``reverse`` when ``o`` was keyed from the other end."""
    pk_fwd, pk_rev, by_fwd, by_rev, bits = o["pk_fwd"], o["pk_rev"], o["by_fwd"], o["by_rev"], o["tcp"]
    if reverse:
        pk_fwd, pk_rev, by_fwd, by_rev = pk_rev, pk_fwd, by_rev, by_fwd
        swapped = 0
        for a, b in _SWAP_BITS:
            if bits & a:
                swapped |= b
            if bits & b:
                swapped |= a
        # a SYN-ACK the later slice saw as "from its responder" was sent by our initiator: drop it
        bits = swapped
    else:
        bits &= ~TCP_FIRST_SYN  # only the first slice knows how the flow began
    fl.pk_fwd[i] += pk_fwd
    fl.pk_rev[i] += pk_rev
    fl.by_fwd[i] += by_fwd
    fl.by_rev[i] += by_rev
    if o["last_ts"] >= fl.last_ts[i]:
        fl.last_ts[i], fl.last_frame[i], fl.last_cap[i] = o["last_ts"], o["last_frame"], o["last_cap"] + base
    if fl.tcp[i] & TCP_SYNACK_REV and pk_fwd:
        bits |= TCP_DATA_FWD
    fl.tcp[i] |= bits
