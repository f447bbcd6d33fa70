"""Anti-replay and sequence-number analysis per SA direction (ESP and AH).

Every ESP and AH packet carries a 32-bit sequence number that the sender
increments by one per packet and must never cycle (RFC 4303 3.3.3, RFC 4302
3.3.2); the receiver drops duplicates and packets older than its replay
window (RFC 4303 3.4.3: at least 32 packets, 64 recommended).  This module
replays that check for each SA direction of a capture, in capture (frame)
order -- the order the decoder delivers, which is the order a receiver at
the capture point saw; timestamps are not used -- and says what a receiver
would have seen.

Terms (all per SA direction; "highest" is the highest sequence number seen
before the packet in question, "behind" is highest minus the packet's
sequence number):

``replays``
    packets whose sequence number was already seen on the SA (a duplicate:
    an attacker's replay, or the network duplicating a packet).  Found inside
    the 64 window from a bitmap, further back from the record of holes (a
    number that is neither in a hole nor below the first one seen was seen).
``gaps``, ``missing``
    holes: runs of sequence numbers between the lowest and the highest seen
    that never arrived (lost, or not captured), and how many numbers they
    hold.  A number that arrives late fills its hole, so a reordered packet
    makes no gap.  ``loss_rate`` = missing / expected, where expected counts
    the numbers from the lowest to the highest seen (per counter run, see
    resets).
``reordered``
    packets that arrived late (a higher number had already arrived), were not
    duplicates, and were less than 64 behind: a receiver with a 64 window
    accepts them.  Those 32 to 63 behind also count in ``too_old_32``.
``too_old_32``, ``too_old_64``
    late packets, not duplicates, 32 or more (64 or more) behind: a receiver
    with a 32 (64) packet window drops them although they are new.
    ``too_old_64`` <= ``too_old_32``.  ``reorder_rate`` = (reordered +
    too_old_64) / packets, every late arrival.
``seq_resets``
    the counter started again without a new SPI: a packet 64 or more behind
    whose number is at most 64 (a counter near its start: RFC 4303 3.3.3 sends
    1 first) and whose successor on the SA continues from it (1 to 64
    above).  The new run is analysed on its own; the earlier run's holes are
    final.  A lone old packet with a small number, not continued, is a replay
    (or a late packet).  A replayed burst that starts at one of the first 64
    numbers looks like a reset: only the payloads could tell.
``esn_wraps``
    the 32-bit counter went round: a number within 2**24 above 0 after a
    highest within 2**24 below 2**32.  Extended sequence numbers (RFC 4303
    2.2.1) are then inferred as RFC 4303 appendix A does, from the highest
    seen, and the analysis continues in 64 bits.  The wire does not say
    whether ESN was negotiated: without ESN a wrap is the cycling RFC 4303
    3.3.3 forbids.
``replay_rate`` = replays / packets.

Events (``events``), at most the first 100 per SA direction by frame (the
counts above are complete), each a dict with ``kind``, ``capture``,
``frame`` and:

* ``replay``: ``seq``, ``behind``, ``original_capture`` and
  ``original_frame`` (the packet it repeats, known when it is less than 64
  behind; else null);
* ``gap``: ``after_seq`` and ``seq`` (the numbers seen either side of the
  hole), ``missing``; ``frame`` is the packet that revealed it: the later of
  the first packet seen above it and the first seen below it (usually the
  first packet past it; for a hole below the first number seen, the late
  packet under it);
* ``reorder`` (less than 64 behind), ``too_old`` (64 or more): ``seq``,
  ``behind``;
* ``reset``: ``seq`` (the new counter's first), ``from_seq`` (the highest
  before);
* ``esn_wrap``: ``seq``, ``from_seq``.

Sequence numbers in events are as on the wire (the low 32 bits).

Cost.  The tracker's hot path (:meth:`ipsecpcap.tracker.Tracker.esp`) only
checks ``seq == top + 1`` (``top``: the highest of the in-order run) and,
when it holds, stores ``seq`` as the new top and the frame in a 64-slot ring
of machine integers (``seq & 63``); everything else is
:meth:`SeqState.packet`, called for the first :data:`HEAD` packets of an SA
and for every packet that is not the next in order.  The bitmap and the
highest number are brought up to date lazily, from the length of the
in-order run, when the slow path is next called.  Memory per SA is bounded:
64 ring slots, at most :data:`OPEN_HOLES_MAX` open holes (the oldest are
then closed: a late packet for a closed hole can no longer be told from a
replay, is counted as a late arrival, and ``exact`` becomes false),
:data:`EVENTS_MAX` events and closed-gap examples, :data:`HEAD` head packets
and :data:`LOG_MAX` log entries.

Merging (:meth:`SeqState.merge`, a later slice into an earlier one).  A
slice starts every SA afresh, so what happens at a slice boundary is
re-checked: the later slice keeps its first :data:`HEAD` packets of each SA
verbatim (the "head") and every later packet that arrived late with a
number no higher than the head's highest (the "log": the only packets that
can reach back into the earlier slice).  The merge feeds the head to the
earlier slice's state -- so a gap, reorder, replay or reset across the
boundary is found with its frames, exactly as in one pass -- then adds the
rest of the later slice's counts and events, re-checks the log (a packet
the later slice took for a late arrival is a replay if the earlier slice
saw its number; replays of it then name the earlier original), and takes
the later slice's holes and window (after a reset in the later slice: the
run the reset ended is extended to the later slice's highest before it, and
the new run is the later slice's).  The result equals one pass -- counts,
rates and events, tested at every cut of a sequence with every kind of
event -- when the head reaches the earlier slice's highest number and
nothing overflowed.  Otherwise ``exact`` is false: a later slice whose first
:data:`HEAD` packets of an SA are all older than the earlier slice's
highest (overlapping captures; the replays there are then counted from the
numbers both slices saw, without events), more than :data:`LOG_MAX` log
entries, or closed holes.
"""
from __future__ import annotations

from array import array
from bisect import bisect_right
from dataclasses import dataclass
from operator import itemgetter

from .records import Row, record

M32 = 0xFFFFFFFF
SPACE = 1 << 32
WINDOW = 64  # RFC 4303 3.4.3 recommends 64; 32 is the minimum
SMALL_WINDOW = 32
FULL = (1 << WINDOW) - 1
HEAD = 8  # packets of an SA kept verbatim for re-checking at a merge
EVENTS_MAX = 100  # events (and closed-gap examples) kept per SA; all are counted
OPEN_HOLES_MAX = 256
LOG_MAX = 256
WRAP_NEAR = 1 << 24  # how near 2**32 and 0 the two sides of an ESN wrap must be
RESET_MAX_SEQ = 64  # a restarted counter's first number seen is at most this
CAPTURE_SHIFT = 40  # where = capture index << 40 | frame
FORCE = -2  # a hot-path top that takes no packet (top + 1 is never a sequence number)
NO_FLOOR = -(1 << 80)  # extended numbers can go below 0 (a late packet from before a wrap)

# counts (a list, so that the head of a slice can be snapshotted and subtracted)
C_REPLAYS, C_REORDERED, C_TOO_OLD_32, C_TOO_OLD_64, C_RESETS, C_WRAPS, C_GAPS, C_MISSING, C_EXPECTED = range(9)
# C_GAPS / C_MISSING: holes already closed (evicted, or ended by a reset);
# C_EXPECTED: numbers spanned by counter runs ended by a reset

# hole flags: a hole that only the later slice's own view made (re-made by a merge)
H_HEAD = 1  # revealed while the head was being kept
H_LOGGED = 2  # made by a packet that went to the log

NOT_SEEN, SEEN, UNKNOWN = 0, 1, 2
KIND_ORDER = {"reset": 0, "esn_wrap": 1, "gap": 2, "replay": 3, "reorder": 4, "too_old": 5}
_start = itemgetter(0)


_RING_ZERO = bytes(8 * WINDOW)


def new_ring() -> array:
    """The hot path's 64 frames, indexed by seq & 63 (machine integers: no object per frame)."""
    return array("q", _RING_ZERO)


def where_of(capture: int, frame: int) -> int:
    return capture << CAPTURE_SHIFT | frame


def split_where(where: int) -> tuple[int, int]:
    return where >> CAPTURE_SHIFT, where & ((1 << CAPTURE_SHIFT) - 1)


@dataclass(frozen=True, slots=True)
class SeqSummary:
    """What :meth:`SeqState.summary` returns; ``events`` are tuples with ``where`` values
    (see :func:`event_dict`)."""

    replays: int
    gaps: int
    missing: int
    reordered: int
    too_old_32: int
    too_old_64: int
    resets: int
    esn_wraps: int
    loss_rate: float
    replay_rate: float
    reorder_rate: float
    exact: bool
    events: list[tuple]


CLEAN = SeqSummary(0, 0, 0, 0, 0, 0, 0, 0, 0.0, 0.0, 0.0, True, [])  # nothing to say


class SeqState:
    """The sequence state of one SA direction (see the module docstring).

    The tracker keeps beside it, in the SA entry, the highest number of the
    hot path's in-order run (``top``: the hot path takes ``seq == top + 1``
    and stores it; ``FORCE`` sends every packet here) and the 64-slot frame
    ring; both are passed in.  ``sync`` is the ``top`` last handed back: the
    difference is the run of in-order packets the hot path took since.
    """

    __slots__ = ("sync", "high", "bitmap", "low", "holes", "floor", "counts", "local_gaps", "local_missing",
                 "events", "closed", "pending", "head", "head_done", "head_pending", "snap", "snap_events", "head_high",
                 "log", "reset_span", "exact")

    def __init__(self):
        self.sync = FORCE
        self.high = -1  # highest number seen (extended to 64 bits); -1: no packet yet
        self.bitmap = 0  # bit i: number high - i was seen (i < 64)
        self.low = -1  # lowest number seen in this counter run
        self.holes: list[list] = []  # open holes [first, last, where revealed, flags], sorted
        self.floor = NO_FLOOR  # numbers up to here may lie in closed holes
        self.counts = [0] * 9
        self.local_gaps = 0  # closed holes with flags (H_HEAD, H_LOGGED): dropped when merged as the later slice
        self.local_missing = 0
        self.events: list[tuple] = []
        self.closed: list[tuple] = []  # examples of closed holes (first, last, where, flags)
        self.pending: tuple | None = None  # (wire seq, extended, where) of a possible reset
        self.head = array("q")  # wire seq, where, wire seq, where, ... of the first HEAD packets
        self.head_done = False
        self.head_pending = False  # the head ended on a possible reset (resolved after it)
        self.snap: list[int] | None = None  # counts when the head was complete
        self.snap_events = 0
        self.head_high = -1
        self.log: list[tuple] | None = None  # (extended, where, wire seq, behind); None: not logging
        self.reset_span: tuple[int, int] | None = None  # (highest, lowest) before the first reset after the head
        self.exact = True

    # ------------------------------------------------------------------ the slow path
    def packet(self, seq: int, where: int, top: int, ring: array) -> int:
        """One packet the hot path did not take; returns the next ``top``."""
        if top != self.sync:
            self._advance(top - self.sync)
        if self.head_done:
            if self.pending is not None:
                self._resolve(seq, where, ring)
            else:
                self._one(seq, where, ring)
            return self.top()
        head = self.head
        head.append(seq)
        head.append(where)
        h = self.high
        if seq == (h & M32) + 1 and h >= 0 and self.pending is None:  # in order: most of a head
            self.high = h + 1
            self.bitmap = ((self.bitmap << 1) | 1) & FULL
            ring[seq & 63] = where
        elif h < 0:
            self.high = self.low = seq
            self.bitmap = 1
            ring[seq & 63] = where
        elif self.pending is not None:
            self._resolve(seq, where, ring)
        else:
            self._one(seq, where, ring)
        if len(head) < 2 * HEAD:
            return FORCE
        self._end_head()
        return self.top()

    def top(self) -> int:
        """The ``top`` for the hot path: the number after which it may take the
        next in order (``FORCE``: it may take nothing)."""
        self.sync = FORCE if not self.head_done or self.pending is not None else self.high & M32
        return self.sync

    def settle(self, top: int) -> None:
        """Account for the in-order run the hot path took (``top`` is its current value)."""
        if top != self.sync:
            self._advance(top - self.sync)
            self.sync = top

    def _advance(self, run: int) -> None:
        self.high += run
        self.bitmap = FULL if run >= WINDOW else ((self.bitmap << run) | ((1 << run) - 1)) & FULL

    def _end_head(self) -> None:
        self.head_done = True
        self.head_pending = self.pending is not None
        self.snap = list(self.counts)
        self.snap_events = len(self.events)
        self.head_high = self.high
        self.log = []

    def _extend(self, seq: int) -> int:
        """The 64-bit number of a 32-bit one, from the highest seen (RFC 4303 appendix A)."""
        h = self.high
        hl = h & M32
        base = h - hl
        if seq >= hl:
            if hl + SPACE - seq <= WRAP_NEAR:  # a late packet from before the wrap (may go below 0)
                return base - SPACE + seq
            return base + seq
        if seq + SPACE - hl <= WRAP_NEAR:  # the counter went round
            return base + SPACE + seq
        return base + seq

    def _one(self, seq: int, where: int, ring: array) -> None:
        x = self._extend(seq)
        h = self.high
        if x > h:
            self._forward(x, seq, where, ring)
            return
        behind = h - x
        if behind >= WINDOW and seq <= RESET_MAX_SEQ and x >> 32 == h >> 32:
            self.pending = (seq, x, where)  # a reset if the next packet continues from it
            return
        self._late(x, seq, where, behind, ring)

    def _resolve(self, seq: int, where: int, ring: array) -> None:
        pseq, px, pwhere = self.pending
        self.pending = None
        if 0 < seq - pseq <= WINDOW:
            self._reset(pseq, pwhere, ring)
        else:
            self._late(px, pseq, pwhere, self.high - px, ring)
        self._one(seq, where, ring)

    def _forward(self, x: int, seq: int, where: int, ring: array) -> None:
        h = self.high
        if x >> 32 != h >> 32:
            self.counts[C_WRAPS] += 1
            self._event(("esn_wrap", where, seq, h & M32))
        if x > h + 1:
            self.holes.append([h + 1, x - 1, where, 0 if self.head_done else H_HEAD])
            if len(self.holes) > OPEN_HOLES_MAX:
                self._evict()
        d = x - h
        self.bitmap = ((self.bitmap << d) | 1) & FULL if d < WINDOW else 1
        self.high = x
        ring[x & 63] = where

    def _late(self, x: int, seq: int, where: int, behind: int, ring: array) -> None:
        """A packet at or below the highest: a replay, or a late arrival."""
        state, original = self._seen(x, behind, ring)
        if state == SEEN:
            self.counts[C_REPLAYS] += 1
            self._event(("replay", where, seq, behind, original))
            return
        if state == UNKNOWN:
            self.exact = False
        logged = self._logs(x)
        self._arrive(x, where, behind, ring, state, (H_LOGGED if logged else 0) | (0 if self.head_done else H_HEAD))
        c = self.counts
        if behind < WINDOW:
            c[C_REORDERED] += 1
            if behind >= SMALL_WINDOW:
                c[C_TOO_OLD_32] += 1
            self._event(("reorder", where, seq, behind))
        else:
            c[C_TOO_OLD_32] += 1
            c[C_TOO_OLD_64] += 1
            self._event(("too_old", where, seq, behind))
        if logged:
            if len(self.log) < LOG_MAX:
                self.log.append((x, where, seq, behind))
            else:
                self.exact = False

    def _arrive(self, x: int, where: int, behind: int, ring: array, state: int, flags: int) -> None:
        """A new number at or below the highest: fill its hole, or extend below the lowest."""
        if x < self.low:
            if x + 1 < self.low:
                self.holes.insert(0, [x + 1, self.low - 1, where, flags])
                if len(self.holes) > OPEN_HOLES_MAX:
                    self._evict()
            self.low = x
        elif state == NOT_SEEN:
            self._fill(x)
        if behind < WINDOW:
            self.bitmap |= 1 << behind
            ring[x & 63] = where

    def _seen(self, x: int, behind: int, ring: array) -> tuple[int, int | None]:
        if x < self.low:
            return NOT_SEEN, None
        if behind < WINDOW:
            if self.bitmap >> behind & 1:
                return SEEN, ring[x & 63]
            return NOT_SEEN, None
        if self._hole_at(x) >= 0:
            return NOT_SEEN, None
        if x <= self.floor:
            return UNKNOWN, None
        return SEEN, None

    def _hole_at(self, x: int) -> int:
        i = bisect_right(self.holes, x, key=_start) - 1
        return i if i >= 0 and self.holes[i][1] >= x else -1

    def _fill(self, x: int) -> None:
        i = self._hole_at(x)
        if i < 0:
            return
        h = self.holes[i]
        if h[0] == h[1]:
            del self.holes[i]
        elif x == h[0]:
            h[0] += 1
        elif x == h[1]:
            h[1] -= 1
        else:
            self.holes.insert(i + 1, [x + 1, h[1], h[2], h[3]])
            h[1] = x - 1
            if len(self.holes) > OPEN_HOLES_MAX:
                self._evict()

    def _evict(self) -> None:
        h = self.holes.pop(0)
        self.floor = max(self.floor, h[1])
        self.exact = False
        self._close(h)

    def _close(self, h: list) -> None:
        n = h[1] - h[0] + 1
        if h[3]:
            self.local_gaps += 1
            self.local_missing += n
        else:
            self.counts[C_GAPS] += 1
            self.counts[C_MISSING] += n
        if len(self.closed) < EVENTS_MAX:
            self.closed.append(tuple(h))

    def _reset(self, seq: int, where: int, ring: array) -> None:
        if self.head_done and self.reset_span is None:
            self.reset_span = (self.high, self.low)
        for h in self.holes:
            self._close(h)
        self.holes = []
        self.counts[C_EXPECTED] += self.high - self.low + 1
        self.counts[C_RESETS] += 1
        self._event(("reset", where, seq, self.high & M32))
        self.high = self.low = seq
        self.bitmap = 1
        self.floor = NO_FLOOR
        ring[seq & 63] = where

    def _logs(self, x: int) -> bool:
        """Whether a late, new packet goes to the log: after the head, before
        any reset, and no higher than the head reached."""
        return self.log is not None and self.reset_span is None and x <= self.head_high

    def _event(self, ev: tuple) -> None:
        if len(self.events) < EVENTS_MAX:
            self.events.append(ev)

    # ------------------------------------------------------------------ partial results
    def clone(self, shift: int = 0) -> "SeqState":
        """A deep copy; ``shift`` is added to every ``where`` (a later slice's capture numbering)."""
        c = SeqState()
        for name in ("sync", "high", "bitmap", "low", "floor", "local_gaps", "local_missing", "head_done",
                     "head_pending", "snap_events", "head_high", "reset_span", "exact"):
            setattr(c, name, getattr(self, name))
        c.counts = list(self.counts)
        c.snap = list(self.snap) if self.snap is not None else None
        c.holes = [[a, b, w + shift, f] for a, b, w, f in self.holes]
        c.closed = [(a, b, w + shift, f) for a, b, w, f in self.closed]
        c.events = [_shift_event(e, shift) for e in self.events]
        c.pending = None if self.pending is None else (self.pending[0], self.pending[1], self.pending[2] + shift)
        c.head = array("q", self.head)
        if shift:
            c.head[1::2] = array("q", [w + shift for w in self.head[1::2]])
        c.log = None if self.log is None else [(x, w + shift, s, b) for x, w, s, b in self.log]
        return c

    def merge(self, o: "SeqState", ring: array, oring: array) -> None:
        """Fold ``o``, the state of the same SA in a later slice (settled, and
        cloned with that slice's capture numbering), into this one (settled).
        ``ring`` is ours and is updated; ``oring`` is the later slice's."""
        if o.high < 0:
            return
        n0 = len(self.events)
        for seq, where in zip(o.head[::2], o.head[1::2]):  # the boundary, exactly as one pass would see it
            self.packet(seq, where, self.sync, ring)
        if o.snap is None:  # the head was all of it
            return
        # packets the later slice took for originals that repeat ours: their copies repeat ours too
        dup_of = {e[1]: e[4] for e in self.events[n0:] if e[0] == "replay"}
        if o.head_pending and self.pending is not None and self.pending[2] == o.head[-1]:
            self.pending = None  # the later slice settled it after its head, and counted it there
        elif o.head_pending or self.pending is not None:  # we read the head otherwise than it did
            self.exact = False
            if self.pending is not None:
                pseq, px, pwhere = self.pending
                self.pending = None
                self._late(px, pseq, pwhere, self.high - px, ring)
        off = (self.high - o.head_high + SPACE // 2) // SPACE * SPACE  # ESN: its numbers in ours
        c = self.counts
        for i, n in enumerate(o.counts):
            c[i] += n - o.snap[i]
        if self.high != o.head_high + off:
            # the head did not reach our highest: what it saw after its head up
            # to our highest, we saw too (unless a hole of either says otherwise)
            self.exact = False
            c[C_REPLAYS] += self._both_saw(o.head_high + off + 1, min(o.high + off, self.high), o.holes, off)
        replaced = {}
        for x, where, seq, behind in o.log or ():
            x += off
            if x > self.high:  # only when the head did not line up with us
                self.exact = False
                continue
            state, original = self._seen(x, self.high - x, ring)
            if state == SEEN:  # it took this for a late arrival: we saw the number
                if behind >= WINDOW:  # as one pass: the original is known inside the window only
                    original = None
                if behind < WINDOW:
                    c[C_REORDERED] -= 1
                    if behind >= SMALL_WINDOW:
                        c[C_TOO_OLD_32] -= 1
                else:
                    c[C_TOO_OLD_32] -= 1
                    c[C_TOO_OLD_64] -= 1
                c[C_REPLAYS] += 1
                replaced[where] = ("replay", where, seq, behind, original)
                dup_of[where] = original
                continue
            if state == UNKNOWN:
                self.exact = False
            logged = self._logs(x)
            self._arrive(x, where, self.high - x, ring, state, H_LOGGED if logged else 0)
            if logged:
                if len(self.log) < LOG_MAX:
                    self.log.append((x, where, seq, behind))
                else:
                    self.exact = False
        later = []
        for e in o.events[o.snap_events:]:
            if e[0] in ("reorder", "too_old"):
                e = replaced.get(e[1], e)
            elif e[0] == "replay" and e[4] in dup_of:
                e = e[:4] + (dup_of[e[4]],)
            later.append(e)
        self.events = (self.events + later)[:EVENTS_MAX]
        for h in o.closed:
            if not h[3] and len(self.closed) < EVENTS_MAX:
                self.closed.append(h)
        if o.reset_span is not None:
            # the later slice's counter started again: the run it ended is ours
            # (up to its highest), what follows is its own
            rh, rl = o.reset_span
            for h in self.holes:
                self._close(h)
            top, bottom = max(self.high, rh + off), min(self.low, rl + off)
            c[C_EXPECTED] += (top - bottom + 1) - (rh - rl + 1)
            self.high, self.low, self.bitmap, self.floor = o.high, o.low, o.bitmap, o.floor
            self.holes = [list(h) for h in o.holes]
            ring[:] = oring
            if self.reset_span is None and self.head_done:
                self.reset_span = (top, bottom)
            off = 0
        else:
            holes = [[a + off, b + off, w, f] for a, b, w, f in o.holes if not f & (H_HEAD | H_LOGGED)]
            holes = [h for h in holes if h[1] > self.high]
            for h in holes:
                h[0] = max(h[0], self.high + 1)
            self.holes.extend(holes)
            while len(self.holes) > OPEN_HOLES_MAX:
                self._evict()
            oh = o.high + off
            if oh > self.high:
                d = oh - self.high
                mine = (self.bitmap << d) & FULL if d < WINDOW else 0
                for j in range(WINDOW):  # the first copy of a number is the original
                    if o.bitmap >> j & 1 and not mine >> j & 1:
                        ring[(oh - j) & 63] = oring[(oh - j) & 63]
                self.bitmap = o.bitmap | mine
                self.high = oh
            if o.floor != NO_FLOOR:
                self.floor = max(self.floor, o.floor + off)
            self.low = min(self.low, o.low + off)
        if o.pending is not None:
            self.pending = (o.pending[0], o.pending[1] + off, o.pending[2])
        if not o.exact:
            self.exact = False

    def _both_saw(self, lo: int, hi: int, oholes: list, off: int) -> int:
        """How many numbers in [lo, hi] both we and the later slice saw (an estimate:
        the later slice's numbers after its head are not kept one by one)."""
        if lo > hi:
            return 0
        unseen = [(a, b) for a, b, _, _ in self.holes] + [(a + off, b + off) for a, b, _, _ in oholes]
        if self.low > lo:
            unseen.append((lo, self.low - 1))
        n, at = hi - lo + 1, lo
        for a, b in sorted(unseen):
            a, b = max(a, at), min(b, hi)
            if a <= b:
                n -= b - a + 1
                at = b + 1
        return n

    # ------------------------------------------------------------------ results
    def summary(self, ring: array, top: int, packets: int) -> "SeqSummary":
        """The counts, rates and events; the state itself is left as it is."""
        if self.high < 0:
            return CLEAN
        if not (self.events or self.holes or self.closed or self.pending or self.local_gaps or any(self.counts)):
            return CLEAN  # in order from the first packet to the last
        st = self.clone()
        ring = ring[:]
        st.settle(top)
        if st.pending is not None:  # nothing came after it: not a reset
            pseq, px, pwhere = st.pending
            st.pending = None
            st._late(px, pseq, pwhere, st.high - px, ring)
        c = st.counts
        gaps = c[C_GAPS] + st.local_gaps + len(st.holes)
        missing = c[C_MISSING] + st.local_missing + sum(b - a + 1 for a, b, _, _ in st.holes)
        expected = c[C_EXPECTED] + st.high - st.low + 1
        events = list(st.events)
        events += [("gap", w, (b + 1) & M32, (a - 1) & M32, b - a + 1) for a, b, w, _ in st.closed + st.holes]
        events.sort(key=lambda e: (e[1], KIND_ORDER[e[0]]))
        return SeqSummary(
            replays=c[C_REPLAYS], gaps=gaps, missing=missing, reordered=c[C_REORDERED],
            too_old_32=c[C_TOO_OLD_32], too_old_64=c[C_TOO_OLD_64], resets=c[C_RESETS], esn_wraps=c[C_WRAPS],
            loss_rate=_rate(missing, expected), replay_rate=_rate(c[C_REPLAYS], packets),
            reorder_rate=_rate(c[C_REORDERED] + c[C_TOO_OLD_64], packets), exact=st.exact,
            events=events[:EVENTS_MAX])


def _rate(n: int, d: int) -> float:
    return round(n / d, 6) if d > 0 else 0.0


def _shift_event(e: tuple, shift: int) -> tuple:
    if not shift:
        return e
    if e[0] == "replay" and e[4] is not None:
        return (e[0], e[1] + shift, e[2], e[3], e[4] + shift)
    return (e[0], e[1] + shift) + e[2:]


def event_dict(e: tuple, captures: list[str]) -> dict:
    """One event as the ``sas`` table's ``seq_events`` shows it."""
    kind, where = e[0], e[1]
    cap, frame = split_where(where)
    d = {"kind": kind, "capture": captures[cap], "frame": frame}
    if kind == "gap":
        d.update(after_seq=e[3], seq=e[2], missing=e[4])
    elif kind == "replay":
        d.update(seq=e[2], behind=e[3], original_capture=None, original_frame=None)
        if e[4] is not None:
            ocap, oframe = split_where(e[4])
            d.update(original_capture=captures[ocap], original_frame=oframe)
    elif kind in ("reorder", "too_old"):
        d.update(seq=e[2], behind=e[3])
    else:  # reset, esn_wrap
        d.update(seq=e[2], from_seq=e[3])
    return d


def sa_row_fields(sm: SeqSummary, captures: list[str]) -> dict:
    """The ``sas`` table's sequence fields (see :class:`ipsecpcap.records.SaRow`)."""
    return {
        "replays": sm.replays, "gaps": sm.gaps, "missing": sm.missing, "reordered": sm.reordered,
        "too_old_32": sm.too_old_32, "too_old_64": sm.too_old_64, "seq_resets": sm.resets,
        "esn_wraps": sm.esn_wraps, "loss_rate": sm.loss_rate, "replay_rate": sm.replay_rate,
        "reorder_rate": sm.reorder_rate, "seq_exact": sm.exact,
        "seq_events": [event_dict(e, captures) for e in sm.events],
    }


# ---------------------------------------------------------------------- the `sequence` table
@record
class SequenceEventRow(Row):
    """One sequence-number event of one ESP or AH SA direction (see the module docstring)."""

    capture: str
    frame: int
    protocol: str  # esp | ah
    spi: str
    src: str
    dst: str
    kind: str  # replay, gap, reorder, too_old, reset, esn_wrap
    seq: int  # gap: the first number seen after the hole
    after_seq: int | None  # gap: the last number seen before the hole
    from_seq: int | None  # reset, esn_wrap: the highest number before
    missing: int | None  # gap: numbers in the hole
    behind: int | None  # replay, reorder, too_old: highest seen minus seq
    original_capture: str | None  # replay: the packet it repeats, when less than 64 behind
    original_frame: int | None


def sequence_rows(sas: list, captures: list[str]) -> list[SequenceEventRow]:
    """The events of every SA direction (``SaRow.seq_events``: the first 100 of
    each), one row each, in capture and frame order."""
    order = {name: i for i, name in reversed(list(enumerate(captures)))}
    rows = []
    for r in sas:
        for e in r.seq_events:
            rows.append(SequenceEventRow(
                capture=e["capture"], frame=e["frame"], protocol=r.protocol, spi=r.spi, src=r.src, dst=r.dst,
                kind=e["kind"], seq=e["seq"], after_seq=e.get("after_seq"), from_seq=e.get("from_seq"),
                missing=e.get("missing"), behind=e.get("behind"), original_capture=e.get("original_capture"),
                original_frame=e.get("original_frame")))
    rows.sort(key=lambda r: (order.get(r.capture, 0), r.frame, KIND_ORDER[r.kind], r.protocol, r.spi))
    return rows
