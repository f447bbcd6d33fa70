"""The vectorised fast path: a block of records classified with numpy, and
the common packets applied to the tracker once per SA and per flow.

Where the time went (the 1M-packet benchmark capture, one core, before this
module; stage by stage with repeated runs, shares from ``cProfile``): the
reader's record walk 1.0 s; the per-packet decoder 3.0 s, of which about
30 % in ``Tracker.esp`` / ``Tracker.flow``, 10 % in ``struct.unpack_from``
and the rest the ``frame`` / ``ipv4`` / ``transport`` dispatch (Python
function calls and dict look-ups, the same for every ESP packet of an SA);
IKE parsing 0.4 s of it (11.5k messages); the tables 1.2 s; start-up 0.2 s.
So the common packets are taken here in bulk, and the reader's walk does
the least it can (see :meth:`ipsecpcap.reader._Pcap.walk`).

How a block goes (:meth:`VectorDecoder.run_block`):

1. **Classify.**  The first 50 bytes of every record are gathered into an
   ``(n, 50)`` array (Ethernet 14 + IPv4 20 + UDP 8 + ESP 8) and every frame
   is put in one class by the same tests as :class:`~ipsecpcap.decode.Decoder`:
   *ESP* (untagged Ethernet, IPv4 without options, not a fragment, ESP or
   ESP in UDP 4500 with at least the SPI and sequence number captured),
   *flow* (the same IPv4 carrying TCP with its flags captured, or UDP not on
   port 500 or 4500), *isolated* (IKE on UDP 500, IKE or a NAT-keepalive on
   UDP 4500, a non-IP ethertype: frames whose decoding touches no SA and no
   flow), or *other* (everything else: VLAN tags, IPv6, IP options and
   fragments, AH, ICMP, truncated headers, ...).
2. **Find what the other frames touch.**  The *other* frames are run
   through the real decoder with a sink that only records which SA and flow
   keys they would update (a quoted packet's flow, for an ICMP error; for an
   IP fragment that completes a datagram, the datagram's: the probe
   reassembles on a copy of the reassembler's state).  An ESP or flow group
   with such a key is taken out of the bulk path and decoded frame by frame
   with them.
3. **Group.**  ESP frames are sorted (stably) by SA key -- SPI and
   addresses -- and flows by protocol and their two endpoints, so each group
   is one SA direction or one flow (both directions) in frame order.
4. **Apply, in frame order.**  The frames that are not bulk and the groups
   (at their first frame) are handed over in frame order, so even the
   tracker's dicts are filled in the same order as frame by frame.  An ESP
   group goes frame by frame through :meth:`Tracker.esp` until its SA's
   anti-replay state takes the next in order (``seq == top + 1``, see
   :mod:`ipsecpcap.sequence`) and the rest of the group is consecutive;
   the rest is then one update: counts and bytes added, the last packet's
   time, frame and number stored, the last 64 frames put in the ring.  A
   flow's first frame goes through :meth:`Tracker.flow` (which decides its
   direction); the rest is added per direction, with the TCP observations
   OR-ed (a packet from the initiator after the SYN-ACK completes the
   handshake: the first SYN-ACK is compared with the last ACK).

Why the results are identical to the frame-by-frame decoder: the tracker's
state is per SA and per flow, and a group is taken in bulk only when no
other frame of the block touches its key; the bulk update is what
:meth:`Tracker.esp` / :meth:`Tracker.flow` compute for an in-order run.  A
block whose timestamps go backwards (anywhere, or behind an earlier block)
is decoded frame by frame, since first / last times then depend on the
order.  Everything else the decoder does for rare frames (IKE, reassembly,
ICMP quotes) it still does.  ``tests/ipsecpcap/test_vector.py`` compares
every table of both paths on every fixture capture and on the benchmark
capture scaled down.  ``IPSECPCAP_FASTPATH=packet`` (or
``analyze_capture(..., vector=False)``) forces the frame-by-frame path.
"""
from __future__ import annotations

import numpy as np

from .decode import ETH_IPV4, ETH_IPV6, IKE_PORT, LINKTYPE_ETHERNET, NATT_PORT, VLAN_TPIDS, Decoder
from .reassembly import Reassembler
from .tracker import (FORCE, IPPROTO_ESP, TCP_DATA_FWD, TCP_FIN_FWD, TCP_FIN_REV, TCP_RST_FWD, TCP_RST_REV,
                      TCP_SYN_FWD, TCP_SYNACK_REV, _tcp_fwd, _tcp_rev)

HEAD_BYTES = 50  # Ethernet 14 + IPv4 20 + UDP 8 + ESP SPI and sequence 8
_COLS = np.arange(HEAD_BYTES, dtype=np.int64)
BATCH = 1 << 16  # frames classified and applied together (see VectorDecoder)

# classes
OTHER, ESP, FLOW, ISOLATED = 0, 1, 2, 3

# TCP flags (RFC 9293 3.1) and the tracker's observations (see ipsecpcap.tracker)
_FIN, _SYN, _RST, _ACK = 0x01, 0x02, 0x04, 0x10
_NONE = np.iinfo(np.int64).max


def _be16(rows, i):
    return (rows[:, i].astype(np.int64) << 8) | rows[:, i + 1]


def _be32(rows, i):
    return np.ascontiguousarray(rows[:, i:i + 4]).view(">u4").ravel().astype(np.int64)


class _ShadowReassembler(Reassembler):
    """The probe's reassembler: on the first fragment of a batch it takes a copy
    of the real reassembler's state, then reassembles like it.  The real one
    sees the same fragments in the same order afterwards (bulk frames are
    never fragments), so the probe learns which datagram a fragment completes,
    and what keys that datagram touches."""

    def __init__(self, real: Reassembler):
        super().__init__(real.timeout, real.max_pending)
        self.real = real
        self.synced = False

    def _add(self, key, offset, more, data, ts):
        if not self.synced:
            c = self.real.copy()
            self.pending, self._last_sweep = c.pending, c._last_sweep
            self.synced = True
        return Reassembler._add(self, key, offset, more, data, ts)


class _ProbeDecoder(Decoder):
    """The decoder as the probe runs it: an IKE message touches no SA and no flow,
    so it is not parsed."""

    def ike(self, buf, q, end, reported, addrs, sport, dport, ts, frame, marker, nfrags):
        return "analysed:ike"


class _KeyProbe:
    """A decoder sink that records the SA and flow keys a frame would update."""

    __slots__ = ("sas", "flows")

    def __init__(self):
        self.sas: set = set()
        self.flows: set = set()

    def esp(self, frame, ts, addrs, spi, seq, length, encap, fragments):
        self.sas.add((IPPROTO_ESP, spi, bytes(addrs)))
        return False  # no esp_sample

    def esp_sample(self, spi, addrs, packet):
        pass

    def ah(self, frame, ts, addrs, spi, seq, length, next_header):
        pass  # AH SAs never take the bulk path

    def flow(self, frame, ts, proto, addrs, sport, dport, length, tcp_flags, protected_by):
        self.flows.add(_flow_key(proto, bytes(addrs), sport, dport))

    def icmp_error(self, frame, ts, addrs, proto, icmp_type, code, quoted, quoted_flow):
        if quoted_flow is not None:
            p, a, sp, dp = quoted_flow
            self.flows.add(_flow_key(p, bytes(a), sp, dp))

    def ike(self, *args):
        pass

    def keepalive(self, *args):
        pass

    def truncated_ipsec(self, *args):
        pass


def _flow_key(proto: int, addrs: bytes, sport: int, dport: int):
    """The direction-free key of a flow, as the bulk path groups IPv4 flows."""
    if len(addrs) != 8:
        return None  # IPv6: never in the bulk path
    a = int.from_bytes(addrs[:4], "big") << 16 | sport
    b = int.from_bytes(addrs[4:], "big") << 16 | dport
    return (proto, a, b) if a <= b else (proto, b, a)


class VectorDecoder:
    """Feeds ``decoder.sink`` (a :class:`~ipsecpcap.tracker.Tracker`) block by block;
    see the module docstring.  ``decoder`` (a plain :class:`Decoder` on the same
    tracker) decodes the frames that do not take the bulk path and keeps the
    frame accounting (``counts``) and the reassembler.

    Blocks are gathered (the first 50 bytes of each record) as they come and
    classified and applied in batches of about ``batch`` frames: the more
    frames of an SA or flow a batch holds, the fewer Python-level updates.
    The reader's 4 MiB blocks hold ~6,500 frames of the benchmark capture; a
    batch of 64Ki frames keeps ~40 MB of them alive (the frames that are not
    taken in bulk are decoded from them)."""

    def __init__(self, tracker, decoder: Decoder | None = None, batch: int | None = None):
        self.tracker = tracker
        self.decoder = decoder if decoder is not None else Decoder(tracker)
        self.counts = self.decoder.counts
        self.reasm = self.decoder.reasm
        self.batch = BATCH if batch is None else batch
        self.max_ts = float("-inf")  # the latest timestamp of every frame so far
        self._addrs: dict[int, bytes] = {}  # 64-bit address pair -> 8 bytes (a cache)
        self._shadow = _ShadowReassembler(self.reasm)
        self._probe = _ProbeDecoder(_KeyProbe(), self._shadow)
        self._parts: list[tuple] = []  # (block, rows, offsets, caplens, ts, frames) waiting
        self._pending = 0  # frames in self._parts
        # frames decoded in batches / frame by frame (whole blocks), groups of a batch
        # decoded frame by frame because another frame shares their key
        self.stats = {"bulk_frames": 0, "frame_frames": 0, "batches": 0, "conflict_groups": 0}

    def finish(self) -> None:
        self.flush()
        self.decoder.finish()

    # ------------------------------------------------------------------ blocks
    def run_block(self, block) -> None:
        n = len(block.offsets)
        if n and block.linktypes == LINKTYPE_ETHERNET:
            if block.arrays is not None:
                offs, caps, ts = block.arrays
            else:
                offs = np.array(block.offsets, dtype=np.int64)
                caps = np.array(block.caplens, dtype=np.int64)
                ts = np.array(block.ts, dtype=np.float64)
            if ts[0] >= self.max_ts and not (ts[1:] < ts[:-1]).any():
                self.max_ts = float(ts[-1])
                frames = block.frames
                if frames[-1] - frames[0] == n - 1:
                    fr = np.arange(frames[0], frames[0] + n, dtype=np.int64)
                else:
                    fr = np.array(frames, dtype=np.int64)
                raw = np.frombuffer(block.data, dtype=np.uint8)
                rows = raw.take(offs[:, None] + _COLS, mode="clip")  # bytes past a short record: junk, never used
                self._parts.append((block, rows, offs, caps, ts, fr))
                self._pending += n
                if self._pending >= self.batch:
                    self.flush()
                return
        # timestamps out of order, another link type, no record: frame by frame
        self.flush()
        self._frame_by_frame(block)
        if block.ts:
            self.max_ts = max(self.max_ts, max(block.ts))

    def _frame_by_frame(self, block, count_bad: bool = True) -> None:
        self.decoder.run_block(block if count_bad or not block.bad else _without_bad(block))
        self.stats["frame_frames"] += len(block.offsets)

    # ------------------------------------------------------------------ batches
    def flush(self) -> None:
        """Classify and apply the blocks waiting in the batch, in frame order."""
        parts = self._parts
        if not parts:
            return
        self._parts = []
        n = self._pending
        self._pending = 0
        counts = self.counts
        for p in parts:
            for frame, kind, detail in p[0].bad:
                cat = f"malformed:{kind}:record"
                counts[cat] = counts.get(cat, 0) + 1
        rows = np.concatenate([p[1] for p in parts]) if len(parts) > 1 else parts[0][1]
        offs, caps, ts, frames = (np.concatenate([p[c] for p in parts]) for c in (2, 3, 4, 5))
        bases = np.cumsum([0] + [len(p[2]) for p in parts])
        part_of = np.repeat(np.arange(len(parts)), np.diff(bases))

        # ---- classify (the tests of Decoder.frame / ipv4 / transport, for the common shapes)
        et = _be16(rows, 12)
        tot = _be16(rows, 16)
        ip4 = (caps >= 34) & (et == ETH_IPV4) & (rows[:, 14] == 0x45) & ((_be16(rows, 20) & 0x3FFF) == 0) & (tot >= 20)
        proto = rows[:, 23]
        avail = np.minimum(tot, caps - 14) - 20  # IP payload bytes captured (Ethernet padding cut off)
        esp_raw = ip4 & (proto == 50) & (avail >= 8)
        udp = ip4 & (proto == 17) & (avail >= 8)
        sport = _be16(rows, 34)
        dport = _be16(rows, 36)
        ulen = _be16(rows, 38)
        uend = np.where((ulen >= 8) & (ulen < avail), ulen, avail)  # RFC 768: the length includes the header
        unum = uend - 8  # UDP payload bytes
        natt = udp & ((sport == NATT_PORT) | (dport == NATT_PORT))
        keepalive = natt & (unum == 1) & (rows[:, 42] == 0xFF)  # RFC 3948 2.2
        marker = natt & (unum >= 4) & (_be32(rows, 42) == 0)  # RFC 3948 2.1: non-ESP marker, IKE follows
        esp_udp = natt & ~keepalive & ~marker & (unum >= 8)
        ike = udp & ~natt & ((sport == IKE_PORT) | (dport == IKE_PORT))
        is_esp = esp_raw | esp_udp
        is_flow = (udp & ~natt & ~ike) | (ip4 & (proto == 6) & (avail >= 14))
        non_ip = (caps >= 14) & (et != ETH_IPV4) & (et != ETH_IPV6) & ~np.isin(et, VLAN_TPIDS)
        isolated = keepalive | marker | ike | non_ip
        other = np.flatnonzero(~(is_esp | is_flow | isolated))

        # ---- what the other frames touch
        keys = self._probe.sink
        keys.sas.clear()
        keys.flows.clear()
        probe = self._probe.frame
        self._shadow.synced = False
        for i, k in zip(other.tolist(), part_of[other].tolist()):
            b = parts[k][0]
            j = i - int(bases[k])
            o = b.offsets[j]
            probe(LINKTYPE_ETHERNET, b.data, o, o + b.caplens[j], b.ts[j], b.frames[j])
        bad_sas = {(spi, int.from_bytes(a, "big")) for p, spi, a in keys.sas if len(a) == 8}
        bad_flows = set(keys.flows)

        # ---- group, and find the groups some other frame touches
        slow = [other, np.flatnonzero(isolated)]
        pos, what, gid = [], [], []
        a64 = np.ascontiguousarray(rows[:, 26:34]).view(">u8").ravel()
        groups = []
        i = np.flatnonzero(is_esp)
        if len(i):
            u = esp_udp[i]
            r = rows[i]
            o = offs[i] + 34  # the IP payload
            esp = _EspGroups(self, i, np.where(u, _be32(r, 42), _be32(r, 34)), a64[i],
                             np.where(u, _be32(r, 46), _be32(r, 38)), tot[i], u,
                             np.where(u, o + 8, o), o + np.where(u, uend[i], avail[i]), ts[i], frames[i],
                             part_of[i], parts)
            conflict = np.array([k in bad_sas for k in zip(esp.spi, esp.addr)], dtype=bool) if bad_sas else None
            groups.append((esp, conflict))
        i = np.flatnonzero(is_flow)
        if len(i):
            flows = _FlowGroups(self, i, proto[i].astype(np.int64), a64[i], sport[i], dport[i], tot[i],
                                rows[i, 47].astype(np.int64), ts[i], frames[i])
            conflict = np.array([k in bad_flows for k in flows.key], dtype=bool) if bad_flows else None
            groups.append((flows, conflict))
        for kind, (grp, conflict) in enumerate(groups, 1):
            ids = np.arange(len(grp.first))
            if conflict is not None and conflict.any():
                # a key some other frame touches: all its frames go frame by frame, in order
                for g in np.flatnonzero(conflict).tolist():
                    slow.append(grp.members[grp.starts[g]:grp.ends[g]])
                    self.stats["conflict_groups"] += 1
                ids = ids[~conflict]
            pos.append(grp.first[ids])
            gid.append(ids)
            what.append(np.full(len(ids), kind, dtype=np.int64))
            nb = len(grp.members) if conflict is None else int(grp.sizes[~conflict].sum())
            if nb:
                counts[grp.category] = counts.get(grp.category, 0) + nb
        slow = np.concatenate(slow)
        pos.append(slow)
        gid.append(part_of[slow])
        what.append(np.zeros(len(slow), dtype=np.int64))
        pos = np.concatenate(pos)
        order = np.argsort(pos, kind="stable")
        todo = zip(pos[order].tolist(), np.concatenate(what)[order].tolist(), np.concatenate(gid)[order].tolist())

        # ---- apply in frame order
        frame_fn = self.decoder.frame
        tr = self.tracker
        apply = [None] + [grp.apply for grp, _ in groups]
        bases = bases.tolist()
        for i, kind, g in todo:
            if kind:
                apply[kind](g, tr)
                continue
            b = parts[g][0]  # g: the block of the batch
            j = i - bases[g]
            o = b.offsets[j]
            cat = frame_fn(LINKTYPE_ETHERNET, b.data, o, o + b.caplens[j], b.ts[j], b.frames[j])
            counts[cat] = counts.get(cat, 0) + 1
        self.stats["bulk_frames"] += n
        self.stats["batches"] += 1

    def addrs_of(self, a: int) -> bytes:
        b = self._addrs.get(a)
        if b is None:
            if len(self._addrs) > 1 << 16:
                self._addrs.clear()
            b = self._addrs[a] = a.to_bytes(8, "big")
        return b


class _EspGroups:
    """The ESP frames of a batch grouped by SA direction (see the module docstring)."""

    category = "analysed:esp"

    def __init__(self, vd, idx, spi, addr, seq, iplen, udp, p_from, p_to, ts, frame, part_of, parts):
        m = len(idx)
        self.vd = vd
        order = np.lexsort((addr, spi))  # stable: frame order within a group
        spi, addr, seq, iplen, udp, ts, frame = (x[order] for x in (spi, addr, seq, iplen, udp, ts, frame))
        self.members = idx[order]
        new = np.ones(m, dtype=bool)
        new[1:] = (spi[1:] != spi[:-1]) | (addr[1:] != addr[:-1])
        starts = np.flatnonzero(new)
        self.first = self.members[starts]
        self.sizes = np.diff(np.append(starts, m))
        self.starts = starts.tolist()
        self.ends = self.starts[1:] + [m]
        # a packet that does not follow its predecessor in the group (seq + 1) ends a bulk run
        brk = np.zeros(m, dtype=bool)
        brk[1:] = seq[1:] != seq[:-1] + 1
        brk[starts] = False
        self.lastbad = np.maximum.reduceat(np.where(brk, np.arange(m), -1), starts).tolist()
        self.spi = spi[starts].tolist()
        self.addr = addr[starts].tolist()
        self.seq_a, self.frame_a = seq, frame
        self.seq, self.frame, self.ts, self.iplen, self.udp = seq.tolist(), frame.tolist(), ts.tolist(), \
            iplen.tolist(), udp.tolist()
        self.cum_len = np.concatenate(([0], np.cumsum(iplen))).tolist()
        self.cum_udp = np.concatenate(([0], np.cumsum(udp))).tolist()
        # where each frame's ESP packet lies, for esp_sample (the first packet of a new SA)
        self.order = order
        self.p_from, self.p_to, self.part_of, self.parts = p_from, p_to, part_of, parts

    def apply(self, g, tr) -> None:
        """Apply group ``g`` to tracker ``tr``: frame by frame until the SA takes the
        rest in order, then the rest in one update (what Tracker.esp does for each)."""
        st, en = self.starts[g], self.ends[g]
        spi = self.spi[g]
        addrs = self.vd.addrs_of(self.addr[g])
        k = (IPPROTO_ESP, spi, addrs)
        seq, frame, ts = self.seq, self.frame, self.ts
        sas = tr.sas
        s = sas.get(k)
        lastbad = self.lastbad[g]
        j = st
        while j < en:
            if s is not None and lastbad <= j and seq[j] == s[13] + 1 and s[13] != FORCE:
                last = en - 1
                s[0] += en - j
                s[1] += self.cum_len[en] - self.cum_len[j]
                s[3], s[5], s[7] = ts[last], frame[last], seq[last]  # timestamps in order: the last is the latest
                nu = self.cum_udp[en] - self.cum_udp[j]
                if nu:
                    s[8] += nu
                s[13] = seq[last]
                a = max(j, en - 64)  # the anti-replay ring: the frames of the last 64 numbers
                if en - a > 8:
                    np.frombuffer(s[14], dtype=np.int64)[self.seq_a[a:en] & 63] = self.frame_a[a:en]
                else:
                    ring = s[14]
                    for q in range(a, en):
                        ring[seq[q] & 63] = frame[q]
                return
            if tr.esp(frame[j], ts[j], addrs, spi, seq[j], self.iplen[j], self.udp[j], 0):
                x = self.order[j]
                data = self.parts[self.part_of[x]][0].data
                tr.esp_sample(spi, addrs, data[int(self.p_from[x]):int(self.p_to[x])])
            if s is None:
                s = sas[k]
            j += 1


class _FlowGroups:
    """The TCP and UDP frames of a batch grouped by flow, both directions together."""

    category = "analysed:ip"

    def __init__(self, vd, idx, pr, addr, sp, dp, iplen, flags, ts, frame):
        m = len(idx)
        self.vd = vd
        ea = ((addr >> np.uint64(32)).astype(np.int64) << 16) | sp
        eb = ((addr & np.uint64(0xFFFFFFFF)).astype(np.int64) << 16) | dp
        lo, hi = np.minimum(ea, eb), np.maximum(ea, eb)
        order = np.lexsort((hi, lo, pr))  # stable: frame order within a group
        idx, pr, addr, sp, dp, lo, hi, iplen, flags, ts, frame = (
            x[order] for x in (idx, pr, addr, sp, dp, lo, hi, iplen, flags, ts, frame))
        d = (ea > eb)[order]  # which end sent it: 1 when the source is the higher endpoint
        self.members = idx
        new = np.ones(m, dtype=bool)
        new[1:] = (pr[1:] != pr[:-1]) | (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])
        starts = np.flatnonzero(new)
        self.first = idx[starts]
        self.sizes = np.diff(np.append(starts, m))
        self.starts = starts.tolist()
        self.ends = self.starts[1:] + [m]
        self.proto = pr[starts].tolist()
        self.key = list(zip(self.proto, lo[starts].tolist(), hi[starts].tolist()))
        self.addr = addr[starts].tolist()
        self.sport = sp[starts].tolist()
        self.dport = dp[starts].tolist()
        self.d = d[starts].tolist()
        self.frame = frame.tolist()
        self.ts = ts.tolist()
        self.iplen = iplen.tolist()
        self.flags = flags.tolist()
        # the first frame of a group goes through Tracker.flow; the rest are summed per direction
        tail = ~new
        d1 = d & tail
        d0 = ~d & tail
        add = np.add.reduceat
        self.n1 = add(d1, starts).tolist()
        self.n0 = add(d0, starts).tolist()
        self.b1 = add(np.where(d1, iplen, 0), starts).tolist()
        self.b0 = add(np.where(d0, iplen, 0), starts).tolist()
        self.tcp = None
        is_tcp = pr == 6
        if is_tcp.any():
            f = np.where(is_tcp & tail, flags, 0)
            syn, ack, rst, fin = (f & _SYN) != 0, (f & _ACK) != 0, (f & _RST) != 0, (f & _FIN) != 0
            # Tracker._tcp_fwd / _tcp_rev, for every packet as if sent by the initiator / the responder
            fwd = np.where(syn & ~ack, TCP_SYN_FWD, 0) | np.where(rst, TCP_RST_FWD, 0) | np.where(fin, TCP_FIN_FWD, 0)
            rev = np.where(syn & ack, TCP_SYNACK_REV, 0) | np.where(rst, TCP_RST_REV, 0) | np.where(fin, TCP_FIN_REV, 0)
            pos = np.arange(m)
            orr = np.bitwise_or.reduceat
            synack = syn & ack
            hasack = ack
            self.tcp = (
                (orr(np.where(d0, fwd, 0), starts).tolist(), orr(np.where(d1, fwd, 0), starts).tolist()),
                (orr(np.where(d0, rev, 0), starts).tolist(), orr(np.where(d1, rev, 0), starts).tolist()),
                (np.minimum.reduceat(np.where(d0 & synack, pos, _NONE), starts).tolist(),
                 np.minimum.reduceat(np.where(d1 & synack, pos, _NONE), starts).tolist()),
                (np.maximum.reduceat(np.where(d0 & hasack, pos, -1), starts).tolist(),
                 np.maximum.reduceat(np.where(d1 & hasack, pos, -1), starts).tolist()),
            )

    def apply(self, g, tr) -> None:
        """Apply group ``g``: the first frame of a new flow through Tracker.flow (which
        decides who initiated it), then the rest added per direction."""
        st, en = self.starts[g], self.ends[g]
        proto, addrs, sport, dport = self.proto[g], self.vd.addrs_of(self.addr[g]), self.sport[g], self.dport[g]
        flows = tr.flows
        fd = self.d[g]  # the direction of the first frame: 1 if its source is the higher endpoint
        f = flows.get((proto, addrs, sport, dport))
        if f is None:
            f = flows.get((proto, addrs[4:] + addrs[:4], dport, sport))
            if f is None:  # a new flow
                tr.flow(self.frame[st], self.ts[st], proto, addrs, sport, dport, self.iplen[st],
                        self.flags[st] if proto == 6 else 0, None)
                if en - st == 1:
                    return
                f = flows.get((proto, addrs, sport, dport))
                if f is None:
                    f = flows[(proto, addrs[4:] + addrs[:4], dport, sport)]
                    fd = 1 - fd
            else:
                fd = 1 - fd  # the first frame came from the responder
                f[1] += 1
                f[3] += self.iplen[st]
                if proto == 6:
                    f[8] |= _tcp_rev(self.flags[st])
        else:  # the first frame came from the initiator
            f[0] += 1
            f[2] += self.iplen[st]
            if proto == 6:
                f[8] |= _tcp_fwd(self.flags[st], f[8])
        # fd is now 1 if frames with d == 1 are the initiator's
        if fd:
            f[0] += self.n1[g]
            f[1] += self.n0[g]
            f[2] += self.b1[g]
            f[3] += self.b0[g]
        else:
            f[0] += self.n0[g]
            f[1] += self.n1[g]
            f[2] += self.b0[g]
            f[3] += self.b1[g]
        f[5] = self.ts[en - 1]  # timestamps in order: the last is the latest
        f[7] = self.frame[en - 1]
        if proto == 6 and en - st > 1:
            fwd, rev, first_synack, last_ack = self.tcp
            rd = 1 - fd
            bits = f[8]
            new = fwd[fd][g] | rev[rd][g]
            la = last_ack[fd][g]
            # a packet from the initiator with ACK after the SYN-ACK: the handshake completed
            if la >= 0 and (bits & TCP_SYNACK_REV or first_synack[rd][g] < la):
                new |= TCP_DATA_FWD
            f[8] = bits | new


def _without_bad(block):
    """The block without its undelivered frames (already counted)."""
    from dataclasses import replace

    return replace(block, bad=[])
