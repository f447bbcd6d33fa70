"""A hash table from keys of two 64-bit words to non-negative integers, in numpy arrays.

It answers a whole array of keys in a few numpy steps (the fast path's
questions come by the batch), and one key at a time (:meth:`KeyTable.get_one`,
for the decoder's rare calls and the packet-at-a-time path).  It indexes the
flows of a tracker (:class:`ipsecpcap.tracker.Flows`, keyed as
:func:`table_words` says) and the ESP SAs the classifier has seen
(:class:`ipsecpcap.vector._SeenSAs`).
"""
from __future__ import annotations

import numpy as np

_M64 = (1 << 64) - 1
_MUL1, _MUL2 = 0xC2B2AE3D27D4EB4F, 0x9E3779B97F4A7C15  # the hash's two odd constants (see KeyTable._slot)


class KeyTable:
    """A map from keys of two 64-bit words to non-negative integers, asked about a
    whole array of keys at once (a Python dict asked key by key was most of the time
    of the questions it answers: see :class:`ipsecpcap.vector._SeenSAs` and
    :class:`ipsecpcap.vector._FlowGroups`).

    An open-addressing hash table in numpy arrays, exact (a slot holds the whole key;
    an empty slot has -1 as its first word, which no key has: keys' first words are
    below 2**63): a key's first slot comes from a multiplicative hash of its two
    words, and it sits in the first free slot from there on (linear probing).  All
    questions probe together, one numpy step per slot, so the longest probe sets the
    number of steps: the table is a power of two with ``sparse`` slots a key at least
    (24 bytes a slot).  An eighth full, on the 1M benchmark capture (2,220 SAs), no
    key sits more than 2 slots past its first (10 in a table half full); the flows
    (18k on that capture, 72k on 5M) take a table at most half full.  Keys put are
    inserted at the next question about an array of keys, or when 4,096 are waiting
    (one at a time; :meth:`put_many` inserts its arrays at once)."""

    _MIN = 64  # slots of the empty table
    _PENDING = 4096  # keys put and not yet inserted at most

    def __init__(self, sparse: int = 8):
        self._new: dict[tuple[int, int], int] = {}  # put since the last question
        self._count = 0
        self._sparse = sparse  # slots per key at least
        self._alloc(self._MIN)

    def _alloc(self, size: int) -> None:
        self._k1 = np.full(size, -1, dtype=np.int64)
        self._k2 = np.zeros(size, dtype=np.uint64)
        self._val = np.zeros(size, dtype=np.int64)
        self._shift = np.uint64(64 - (size.bit_length() - 1))  # the hash's top bits index the table
        self._top, self._mask = int(self._shift), size - 1  # (the same, as Python ints: get_one)

    def _slot(self, k1: np.ndarray, k2: np.ndarray) -> np.ndarray:
        """The first slot of each key: the top bits of (k2 XOR k1 * odd constant) times
        2**64 / golden ratio, modulo 2**64 (Fibonacci hashing)."""
        h = (k2 ^ (k1.astype(np.uint64) * np.uint64(_MUL1))) * np.uint64(_MUL2)
        return (h >> self._shift).astype(np.int64)

    def __len__(self) -> int:
        return self._count + len(self._new)

    def put(self, k1: int, k2: int, value: int) -> None:
        """Add a key (not in the table yet) with its value."""
        new = self._new
        new[(k1, k2)] = value
        if len(new) >= self._PENDING:  # (asked one key at a time, the table would never merge them)
            self._merge()

    def put_many(self, k1: np.ndarray, k2: np.ndarray, values: np.ndarray) -> None:
        """:meth:`put` for arrays of keys and values (distinct), inserted at once.  (Through
        the dict of keys put one at a time, 320k keys put in arrays of 48k, each followed by
        a question, took 1.35 s, most of it sorting and unpacking tuples; at once, 0.58 s.)"""
        if self._new:
            self._merge()
        self._add(k1.astype(np.int64), k2.astype(np.uint64), values.astype(np.int64))

    def _insert(self, k1: np.ndarray, k2: np.ndarray, val: np.ndarray) -> None:
        """Put keys (distinct, not in the table, the table big enough) each in the first
        free slot from its hash on; where several want one free slot, the first gets it
        and the others probe on."""
        mask = len(self._k1) - 1
        h = self._slot(k1, k2)
        while len(h):
            free = np.flatnonzero(self._k1[h] < 0)
            _, first = np.unique(h[free], return_index=True)
            put = free[first]
            self._k1[h[put]] = k1[put]
            self._k2[h[put]] = k2[put]
            self._val[h[put]] = val[put]
            left = np.ones(len(h), dtype=bool)
            left[put] = False
            k1, k2, val, h = k1[left], k2[left], val[left], (h[left] + 1) & mask

    def _merge(self) -> None:
        """Insert the keys put one at a time."""
        new, n = self._new, len(self._new)
        self._new = {}
        self._add(np.fromiter((k[0] for k in new), dtype=np.int64, count=n),
                  np.fromiter((k[1] for k in new), dtype=np.uint64, count=n),
                  np.fromiter(new.values(), dtype=np.int64, count=n))

    def _add(self, k1: np.ndarray, k2: np.ndarray, val: np.ndarray) -> None:
        """Insert keys (distinct, not in the table), growing it first if they need room."""
        self._count += len(k1)
        size = len(self._k1)
        if self._sparse * self._count > size:  # grow: rebuild with all the keys
            used = self._k1 >= 0
            k1, k2, val = (np.concatenate((x[used], y)) for x, y in ((self._k1, k1), (self._k2, k2), (self._val, val)))
            while self._sparse * self._count > size:
                size *= 2
            self._alloc(size)
        self._insert(k1, k2, val)

    def get_one(self, k1: int, k2: int) -> int:
        """The value of one key, -1 if it is not in the table: :meth:`get` for a single key,
        probing in Python (a numpy step costs more than the whole probe of one key)."""
        if self._new:
            v = self._new.get((k1, k2))
            if v is not None:
                return v
        item1 = self._k1.item
        h = ((((k1 * _MUL1) & _M64) ^ k2) * _MUL2 & _M64) >> self._top
        while True:
            s = item1(h)
            if s == k1 and self._k2.item(h) == k2:
                return self._val.item(h)
            if s < 0:
                return -1
            h = (h + 1) & self._mask

    def get(self, k1: np.ndarray, k2: np.ndarray) -> np.ndarray:
        """The value of each key (first words, second words as unsigned 64-bit), -1 where
        the key is not in the table."""
        if self._new:
            self._merge()
        k1 = k1.astype(np.int64)
        k2 = k2.astype(np.uint64)
        mask = len(self._k1) - 1
        h = self._slot(k1, k2)
        found = np.full(len(k1), -1, dtype=np.int64)
        at = np.arange(len(k1))  # the questions still probing
        while True:
            s = self._k1[h]
            hit = (s == k1) & (self._k2[h] == k2)
            found[at[hit]] = self._val[h[hit]]
            go = ~hit & (s >= 0)  # neither the key nor a free slot: probe the next
            if not go.any():
                return found
            at, k1, k2, h = at[go], k1[go], k2[go], (h[go] + 1) & mask


def endpoints(addrs: bytes, sport: int, dport: int) -> tuple[int, int]:
    """The two ends of an IPv4 flow's packet as the bulk path keys them (address << 16 |
    port), the sender's first."""
    x = int.from_bytes(addrs, "big")
    return (x >> 32) << 16 | sport, (x & 0xFFFFFFFF) << 16 | dport


def endpoint_arrays(addr: np.ndarray, sport: np.ndarray, dport: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`endpoints` of many packets: address pairs as unsigned 64-bit, ports."""
    return (((addr >> np.uint64(32)).astype(np.int64) << 16) | sport,
            ((addr & np.uint64(0xFFFFFFFF)).astype(np.int64) << 16) | dport)


def table_words(proto, lo, hi) -> tuple:
    """The two words a flow is known by in the table of flows (:class:`KeyTable`):
    its protocol and lower end (48 bits), and its higher end; of one flow, or of numpy
    arrays of them."""
    return proto << 48 | lo, hi


def flow_words(proto: int, addrs: bytes, sport: int, dport: int) -> tuple[int, int, bool] | None:
    """The two words of a packet's flow in the table of flows (:func:`table_words`) and
    whether the sender is the higher end; None for a flow the table does not take (IPv6)."""
    if len(addrs) != 8 or sport > 0xFFFF or dport > 0xFFFF:
        return None
    a, b = endpoints(addrs, sport, dport)
    return (proto << 48 | a, b, False) if a <= b else (proto << 48 | b, a, True)
