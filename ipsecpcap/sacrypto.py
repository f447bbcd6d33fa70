"""State for decrypting ESP and verifying AH: which key belongs to which SA.

The analyst's keys rarely line up with the capture: an SPI is a wildcard,
an address is NATed, a key file mixes several tunnels.  Each SA direction
is bound to a key on its first packet by trial verification (the ICV, or
the AEAD tag, must verify), in this order:

1. keys naming this SPI and these addresses;
2. keys naming this SPI with other addresses;
3. wildcard keys (no SPI);
4. keys not yet bound to any SA (their SPI in the file may be wrong).

A key named for the SA (1, 2) that fails and no other key verifies stays
bound: every packet then counts as an integrity failure, which is what a
wrong key looks like.  An SA with no candidate that verifies is retried on
its next packets (a first packet may be damaged) and then left without a
key.  Extended sequence numbers (RFC 4303 2.2.1) come from the key when it
says so, and are inferred when a 32-bit sequence number wraps.
"""
from __future__ import annotations

import ipaddress
from itertools import chain
from dataclasses import dataclass, field, fields

from .crypto.ah import ah_icv_ok
from .crypto.esp import EspCipher, EspOpened
from .keymodel import EspKey, KeyStore

RETRIES = 3  # packets of an SA that are tried before it is left without a key
ESP, AH = 50, 51


# address spec -> the address packed (one host), or ip_network, or None (not an address); parsed once
_NETS: dict[str, object] = {}


def _addr_ok(spec: str | None, addr: bytes) -> bool:
    if spec is None:
        return True
    net = _NETS.get(spec, False)
    if net is False:
        try:
            net = ipaddress.ip_network(spec, strict=False)
        except ValueError:
            net = None
        if net is not None and net.prefixlen == net.max_prefixlen:
            net = net.network_address.packed
        _NETS[spec] = net
    if net is None:
        return False
    if type(net) is bytes:  # one host: the same address (of the same family: as long)
        return addr == net
    a = ipaddress.ip_address(addr)
    return a.version == net.version and a in net


@dataclass(slots=True)
class SaState:
    key: EspKey | None = None
    cipher: EspCipher | None = None
    tries: int = 0
    decrypted: int = 0  # ESP: verified and decrypted; AH: ICV verified
    integrity_failures: int = 0
    other_failures: int = 0  # verified but bad padding / length
    esn: bool | None = None
    seq_hi: int = 0
    last_seq: int | None = None  # low 32 bits of the highest sequence number seen
    failures_by_kind: dict[str, int] = field(default_factory=dict)


# the fields of an SaState that are plain data, as SaCrypto.export_state hands them to another
# process (the key goes by its index, the cipher is made again there)
_PLAIN = tuple(f.name for f in fields(SaState) if f.name not in ("key", "cipher"))


class SaCrypto:
    """Binds SAs to keys and opens their packets.  See the module docstring."""

    def __init__(self, store: KeyStore):
        self.keys: list[EspKey] = list(store.esp)
        # the keys by protocol and SPI, in file order (the candidates of an SA, see _candidates)
        self._by_spi: dict[tuple[str, int], list[EspKey]] = {}
        self._wild: dict[str, list[EspKey]] = {"esp": [], "ah": []}
        self._with_spi: dict[str, list[EspKey]] = {"esp": [], "ah": []}
        for k in self.keys:
            if k.spi is None:
                self._wild.setdefault(k.protocol, []).append(k)
            else:
                self._by_spi.setdefault((k.protocol, k.spi), []).append(k)
                self._with_spi.setdefault(k.protocol, []).append(k)
        self.states: dict[tuple, SaState] = {}
        self._ciphers: dict[int, EspCipher | None] = {}
        self.bound: dict[int, set[tuple]] = {}  # id(key) -> SA keys it verified on
        self.wraps = 0  # bound SAs found to use extended sequence numbers by a wrapped counter (see inline)
        self.problems: list[str] = []

    # ------------------------------------------------------------------ another process
    def export_state(self) -> dict:
        """What this object learnt while opening packets (the SA states, which keys bound to
        which SAs, the ciphers made, ESN wraps, problems) as plain data, each key by its
        index in ``keys``: what the classifier process of ``--jobs 2`` hands back, for
        :meth:`adopt_state` of the object it was forked from."""
        index = {id(k): i for i, k in enumerate(self.keys)}
        states = {}
        for sa, st in self.states.items():
            plain = {name: getattr(st, name) for name in _PLAIN}
            plain["failures_by_kind"] = dict(st.failures_by_kind)  # (a copy: not shared with the adopter)
            states[sa] = {"key": None if st.key is None else index[id(st.key)], "cipher": st.cipher is not None,
                          **plain}
        return {"states": states, "bound": {index[k]: set(sas) for k, sas in self.bound.items()},
                "ciphers": {index[k]: c is not None for k, c in self._ciphers.items()},
                "wraps": self.wraps, "problems": list(self.problems)}

    def adopt_state(self, state: dict) -> None:
        """Become what :meth:`export_state` of a copy of this object (the same keys) says:
        the same states, bindings, counts and problems, with this object's own keys and
        ciphers of its own (made again: they are not plain data)."""
        keys = self.keys
        self._ciphers = {id(keys[i]): (EspCipher(keys[i]) if usable else None)
                         for i, usable in state["ciphers"].items()}
        self.states = {}
        for sa, st in state["states"].items():
            key = None if st["key"] is None else keys[st["key"]]
            cipher = self._ciphers.get(id(key)) if st["cipher"] else None
            self.states[sa] = SaState(key=key, cipher=cipher, **{name: st[name] for name in _PLAIN})
        self.bound = {id(keys[i]): sas for i, sas in state["bound"].items()}
        self.wraps = state["wraps"]
        self.problems = list(state["problems"])

    # ------------------------------------------------------------------ key matching
    def _cipher(self, key: EspKey) -> EspCipher | None:
        c = self._ciphers.get(id(key), False)
        if c is False:
            c = EspCipher(key)
            if c.problem:
                # an algorithm or key length the crypto cannot use: reported
                # in the key problems, never tried
                self.problems.append(f"{key.source or key.fingerprint}: {c.problem}")
                c = None
            self._ciphers[id(key)] = c
        return c

    def _candidates(self, proto: int, spi: int, addrs: bytes):
        """(keys naming this SPI, an iterable of the other candidates), each in
        file order: keys naming this SPI and these addresses, then this SPI
        with other addresses; wildcard keys for these addresses; keys naming
        another SPI that are bound to no SA yet (made only if it comes to them)."""
        h = len(addrs) >> 1
        src, dst = addrs[:h], addrs[h:]
        pname = "esp" if proto == ESP else "ah"
        named, named_other = [], []
        for k in self._by_spi.get((pname, spi), ()):
            (named if _addr_ok(k.src, src) and _addr_ok(k.dst, dst) else named_other).append(k)
        wild = [k for k in self._wild.get(pname, ()) if _addr_ok(k.src, src) and _addr_ok(k.dst, dst)]
        bound = self.bound

        def others():
            yield from wild
            yield from [k for k in self._with_spi.get(pname, ()) if k.spi != spi and id(k) not in bound]

        return named + named_other, others()

    def _bind(self, st: SaState, key: EspKey, cipher: EspCipher | None, sa: tuple) -> None:
        st.key, st.cipher = key, cipher
        st.esn = key.esn
        self.bound.setdefault(id(key), set()).add(sa)

    def _seq_hi(self, st: SaState, seq: int) -> int | None:
        """RFC 4303 appendix A: the high 32 bits of an extended sequence number."""
        if not st.esn:
            return None
        last = st.last_seq
        if last is None:
            return st.seq_hi
        if seq < last and last - seq > 0x80000000:
            return st.seq_hi + 1  # wrapped forward
        if seq > last and seq - last > 0x80000000 and st.seq_hi:
            return st.seq_hi - 1  # a late packet from before the wrap
        return st.seq_hi

    def _advance(self, st: SaState, seq: int, hi: int | None) -> None:
        if hi is not None and hi > st.seq_hi:
            st.seq_hi, st.last_seq = hi, seq
        elif st.last_seq is None or (seq > st.last_seq and (hi is None or hi == st.seq_hi)):
            st.last_seq = seq

    # ------------------------------------------------------------------ ESP
    def esp(self, spi: int, addrs: bytes, seq: int, esp: bytes) -> EspOpened | None:
        """Open one ESP packet (``esp`` from the SPI to the end).  Returns the
        result, or None when no key is known for the SA."""
        sa = (ESP, spi, addrs)
        st = self.states.get(sa)
        if st is None:
            st = self.states[sa] = SaState()
        if st.cipher is None:
            if st.tries >= RETRIES:
                return None
            st.tries += 1
            if not self._match(st, sa, seq, lambda c, hi: c.verify(esp, hi)):
                return None
        if not st.esn:  # the common case, inline: no extended sequence numbers, the packet opens
            res = st.cipher.open(esp)
            if res.status == "ok":
                st.decrypted += 1
                if st.last_seq is None or seq > st.last_seq:  # _advance without a high half
                    st.last_seq = seq
                return res
            hi = None
        else:
            hi = self._seq_hi(st, seq)
            res = st.cipher.open(esp, hi)
        if res.status == "integrity_failure" and st.esn is None and st.last_seq is not None \
                and seq < st.last_seq and st.last_seq - seq > 0x80000000:
            # the 32-bit counter wrapped: the peers use extended sequence numbers
            alt = st.cipher.open(esp, st.seq_hi + 1)
            if alt.status == "ok":
                st.esn, hi, res = True, st.seq_hi + 1, alt
                self.wraps += 1
        self.count(st, res.status)
        if res.status == "ok":
            self._advance(st, seq, hi)
        return res

    def inline(self, spi: int, addrs: bytes) -> tuple | None:
        """``(state,) + cipher.inline_parts()`` for an ESP SA bound to a key whose
        packets a loop may open itself (:meth:`EspCipher.inline_parts`), else None.

        The contract for such a loop, which makes it count and bind exactly as
        :meth:`esp`: a packet whose ICV or tag verifies is settled with
        :meth:`verified`; any other packet (too short, a tag or ICV that fails) goes
        to :meth:`esp` untouched, which opens it again and decides.  An ICV failure
        may reveal a wrapped 32-bit counter: the SA then uses extended sequence
        numbers and is no longer for the loop, which learns it from :attr:`wraps`
        changing (the only way a bound SA's ``esn`` changes).  Only once a packet
        of the SA opened (``last_seq`` is set)."""
        st = self.states.get((ESP, spi, addrs))
        if st is None or st.cipher is None or st.esn or st.last_seq is None:
            return None
        parts = st.cipher.inline_parts()
        return None if parts is None else (st,) + parts

    def verified(self, st: SaState, seq: int, status: str) -> None:
        """Count a packet of an SA without extended sequence numbers whose ICV or tag
        verified (``status``: its trailer's verdict), as :meth:`esp` does."""
        if status == "ok":
            st.decrypted += 1
            if st.last_seq is None or seq > st.last_seq:
                st.last_seq = seq
        else:
            self.count(st, status)

    def _match(self, st: SaState, sa: tuple, seq: int, verifies) -> bool:
        named, others = self._candidates(sa[0], sa[1], sa[2])
        for key in chain(named, others):
            c = self._cipher(key)
            if c is None:
                continue
            for hi in ((0,) if key.esn else (None,) if key.esn is False else (None, 0)):
                if verifies(c, hi):
                    self._bind(st, key, c, sa)
                    if hi is not None:
                        st.esn = True
                    return True
        for key in named:  # the file names this SA: keep its key, failures are integrity failures
            c = self._cipher(key)
            if c is not None:
                self._bind(st, key, c, sa)
                return True
        return False

    def count(self, st: SaState, status: str) -> None:
        """Count one packet's outcome on its SA (also for verdicts another engine reached)."""
        if status == "ok":
            st.decrypted += 1
        elif status == "integrity_failure":
            st.integrity_failures += 1
        else:
            st.other_failures += 1
            st.failures_by_kind[status] = st.failures_by_kind.get(status, 0) + 1

    # ------------------------------------------------------------------ AH
    def ah(self, spi: int, addrs: bytes, seq: int, ip_packet: bytes, ah_off: int) -> bool | None:
        """Verify one AH packet's ICV.  None when no key is known for the SA."""
        sa = (AH, spi, addrs)
        st = self.states.get(sa)
        if st is None:
            st = self.states[sa] = SaState()
        if st.key is None:
            if st.tries >= RETRIES:
                return None
            st.tries += 1
            if not self._match_ah(st, sa, ip_packet, ah_off):
                return None
        hi = self._seq_hi(st, seq)
        ok = ah_icv_ok(st.key, ip_packet, ah_off, hi)
        self.count(st, "ok" if ok else "integrity_failure")
        if ok:
            self._advance(st, seq, hi)
        return ok

    def _match_ah(self, st: SaState, sa: tuple, ip_packet: bytes, ah_off: int) -> bool:
        named, others = self._candidates(sa[0], sa[1], sa[2])
        for key in chain(named, others):
            for hi in ((0,) if key.esn else (None,) if key.esn is False else (None, 0)):
                if ah_icv_ok(key, ip_packet, ah_off, hi):
                    self._bind(st, key, None, sa)
                    if hi is not None:
                        st.esn = True
                    return True
        if named:
            self._bind(st, named[0], None, sa)
            return True
        return False

    # ------------------------------------------------------------------ results
    def unmatched_keys(self) -> list[EspKey]:
        return [k for k in self.keys if id(k) not in self.bound]
