"""IP fragment reassembly (RFC 791 section 3.2, RFC 8200 section 4.5).

Only fragmented datagrams come here, which are rare; the cost is paid by them
alone.  Memory is bounded: a datagram waits at most ``timeout`` seconds of
capture time (RFC 791 suggests 15 s, Linux uses 30 s; 60 s keeps slow
captures whole) and at most ``max_pending`` datagrams wait at once.  Every
datagram that never completes is counted in ``expired``; its frames were
already counted as ``analysed:ip-fragment`` by the decoder.
"""
from __future__ import annotations

MAX_DATAGRAM = 65535 + 40  # IPv4 total length limit; IPv6 payload length limit + header


class Reassembler:
    __slots__ = ("pending", "timeout", "max_pending", "completed", "expired", "overlaps",
                 "oversized", "_last_sweep")

    def __init__(self, timeout: float = 60.0, max_pending: int = 4096):
        # key -> [first_ts, {offset: bytes}, total_len or None, nfrags]
        self.pending: dict[tuple, list] = {}
        self.timeout = timeout
        self.max_pending = max_pending
        self.completed = 0
        self.expired = 0
        self.overlaps = 0
        self.oversized = 0
        self._last_sweep = 0.0

    def add4(self, addrs, ident, proto, offset, more, data, ts, frame):
        return self._add((4, addrs, ident, proto), offset, more, data, ts)

    def add6(self, addrs, ident, proto, offset, more, data, ts, frame):
        return self._add((6, addrs, ident, proto), offset, more, data, ts)

    def _add(self, key, offset, more, data, ts):
        """Add one fragment; return (payload, fragment count) when the datagram
        is complete, else None."""
        if ts - self._last_sweep > 1.0:
            self._sweep(ts)
        ent = self.pending.get(key)
        if ent is None:
            if len(self.pending) >= self.max_pending:
                oldest = min(self.pending, key=lambda k: self.pending[k][0])
                del self.pending[oldest]
                self.expired += 1
            ent = self.pending[key] = [ts, {}, None, 0]
        frags = ent[1]
        ent[3] += 1
        if offset in frags:
            self.overlaps += 1  # a retransmitted or overlapping fragment: keep the first copy
        else:
            frags[offset] = bytes(data)
        if not more:
            ent[2] = offset + len(data)
        total = ent[2]
        if total is None:
            return None
        if total > MAX_DATAGRAM:
            del self.pending[key]
            self.oversized += 1
            return None
        # complete when the fragments cover 0..total without a hole
        pos = 0
        for off in sorted(frags):
            if off > pos:
                return None
            if off < pos:
                self.overlaps += 1
            pos = max(pos, off + len(frags[off]))
        if pos < total:
            return None
        buf = bytearray(total)
        for off in sorted(frags, reverse=True):  # earlier fragments win on overlap
            chunk = frags[off][: max(0, total - off)]
            buf[off:off + len(chunk)] = chunk
        del self.pending[key]
        self.completed += 1
        return bytes(buf), ent[3]

    def _sweep(self, now: float) -> None:
        self._last_sweep = now
        old = [k for k, e in self.pending.items() if now - e[0] > self.timeout]
        for k in old:
            del self.pending[k]
        self.expired += len(old)

    def expire_all(self) -> None:
        self.expired += len(self.pending)
        self.pending.clear()

    def stats(self) -> dict[str, int]:
        return {"reassembled": self.completed, "incomplete": self.expired,
                "overlapping_fragments": self.overlaps, "oversized": self.oversized}
