"""SA lifecycle: which IKE SA and exchange made each child SA, which SA
replaced which, PFS, deletions, lifetimes, and the SA timeline.

Runs once at the end over the grouped IKE SAs (messages are few) and the
tracker's per-SA-direction entries (one per SPI, never per packet).  What the
decrypted IKE messages say is taken as fact; whatever is still unknown
(every encrypted exchange without keys) is inferred, and every inferred
value is flagged as such (``rekey_inferred``, ``pfs_inferred``,
``delete_inferred``).

Facts, from decrypted payloads:

=====================================  ==========================================
payload                                 what it establishes
=====================================  ==========================================
SA (ESP/AH proposal) in IKE_AUTH,       a child SA: the request's SPI is the one the
CREATE_CHILD_SA, Quick Mode             exchange initiator receives on, the answer's
                                        the one the responder receives on
SA (IKE proposal, 8-byte SPI) in        an IKE SA rekey: new SPIi from the request,
CREATE_CHILD_SA                         new SPIr from the answer (RFC 7296 1.3.2)
N(REKEY_SA)                             the child SA replaced (the initiator's inbound
                                        SPI of the old SA, RFC 7296 1.3.3)
KE                                      PFS and its group (IKEv1: the SA's Group
                                        Description attribute)
Nonce                                   rekey collisions: the SA made with the lowest
                                        of the four nonces is the redundant one
                                        (RFC 7296 2.8.1)
D                                       deletion (protocol IKE: the IKE SA; ESP/AH:
                                        the sender's inbound SPIs, RFC 7296 3.11)
IKEv1 IDci/IDcr                         a Quick Mode with the same identities as a
                                        live child SA of the same peers replaces it
                                        (IKEv1 has no rekey notify)
=====================================  ==========================================

Inference, without keys (see the README, "SA lifecycle without keys"):

* directions pair up by reversed addresses, same protocol and encapsulation,
  closest first packets;
* a pair belongs to the latest unclaimed child-creating exchange (IKE_AUTH,
  CREATE_CHILD_SA, Quick Mode) between the same peers that began before its
  first packet;
* a child SA made by CREATE_CHILD_SA or Quick Mode replaces the SA of the
  same peers and IKE SA lineage whose traffic stops closest to where the new
  one's starts, when the old one stops within ``REKEY_OVERLAP_MAX`` of it and
  does not outlive it;
* PFS: the size of the creating exchange against a model of the same
  message with and without KE (:class:`SizeModel`);
* an IKEv2 IKE SA first seen in an encrypted exchange is the rekey of the
  IKE SA between the same peers whose last CREATE_CHILD_SA before it has
  the size of an IKE SA rekey (else the last one that made no child SA);
  an IKEv1 phase 1 between the same peers while an older one lives rekeys it;
* deletions: a replaced SA dies at the first INFORMATIONAL after its
  successor was made; an IKE SA at its last INFORMATIONAL when nothing of
  it follows; child SAs with their IKE SA.
"""
from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field, replace
from functools import lru_cache

from . import algorithms as alg
from .ikesa import Chosen, IkeExchange, IkeSa, _v2_chosen, addr_text, group_exchanges, split
from .records import ChildSaRow, TimelineBar, TimelineEvent
from .tracker import (SA_ENCAP, SA_FIRST_CAP, SA_FIRST_FRAME, SA_FIRST_TS, SA_LAST_FRAME, SA_LAST_TS, SA_PACKETS,
                      Tracker)

# Security protocol IDs (RFC 7296 3.3.1; RFC 2407 4.4.1 uses the same numbers)
PROTO_IKE, PROTO_AH, PROTO_ESP = 1, 2, 3
IP_OF = {PROTO_AH: 51, PROTO_ESP: 50}
N_REKEY_SA = 16393  # RFC 7296 3.10.1
V2_IKE_SA_INIT, V2_IKE_AUTH, V2_CREATE_CHILD_SA, V2_INFORMATIONAL = 34, 35, 36, 37
V1_MAIN, V1_AGGRESSIVE, V1_INFORMATIONAL, V1_QUICK = 2, 4, 5, 32
# IPsec DOI SA attributes (RFC 2407 4.5)
V1_LIFE_TYPE, V1_LIFE_DURATION, V1_GROUP = 1, 2, 3
# IKEv2 notify types below this are errors (RFC 7296 3.10.1)
V2_ERROR_MAX = 16383

REKEY_OVERLAP_MAX = 3.0  # s an old SA may still carry traffic after its successor's first packet
IN_FLIGHT = 2.0  # s of ESP after a delete that still counts as in flight
DEFAULT_PUBLEN = 256  # KE size assumed when the group is unknown (MODP-2048)
PAIR_NEIGHBOURS = 3  # directions on the other side, nearest in time, a direction may pair with


def sa_id(sa: IkeSa) -> str:
    return _sa_id(sa.ispi, sa.rspi)


@lru_cache(maxsize=4096)
def _sa_id(ispi: bytes, rspi: bytes) -> str:
    # (one string per IKE SA, however many rows, bars and events name it)
    return f"{ispi.hex()}/{rspi.hex()}"


def spi_text(spi: int | None) -> str | None:
    return None if spi is None else f"0x{spi:08x}"


# ---------------------------------------------------------------- internal state
class _once:
    """A property worked out on first use and kept in the instance (functools.cached_property
    without the lock it takes on every first use in Python 3.11)."""

    def __init__(self, fn):
        self.fn, self.name, self.__doc__ = fn, fn.__name__, fn.__doc__

    def __get__(self, obj, cls=None):
        if obj is None:
            return self
        value = obj.__dict__[self.name] = self.fn(obj)
        return value


@dataclass(eq=False, slots=True)
class SaDir:
    """One ESP/AH SA direction as the tracker saw it."""

    key: tuple  # the tracker's (ip proto, spi, addrs)
    proto: int  # 50 | 51
    spi: int
    src: bytes
    dst: bytes
    first: float
    last: float
    first_frame: int
    last_frame: int
    capture: int
    packets: int
    encap: bool
    child: Child | None = None


@dataclass(eq=False, slots=True)
class _ChildFields:
    """The fields of a :class:`Child`, in slots: a long capture has thousands of child SAs,
    and an instance dict with this many keys and those :class:`Child` adds costs 1.7 KB."""

    proto: int  # 50 | 51
    ike: IkeSa | None
    exchange: IkeExchange | None
    initiator: bytes | None  # the peer that started the creating exchange
    responder: bytes | None
    spi_i: int | None = None  # SPI on packets initiator -> responder (the responder's inbound SPI)
    spi_r: int | None = None
    dir_i: SaDir | None = None
    dir_r: SaDir | None = None
    exact: bool = False  # SPIs read from decrypted IKE
    rekey_spi: int | None = None  # N(REKEY_SA) of the creating exchange
    ts_key: object = None  # IKEv1: the Quick Mode identities
    nonces: tuple[bytes, ...] = ()
    rekey_of: Child | None = None
    rekey_inferred: bool = False
    successors: list[Child] = field(default_factory=list)
    pfs: bool | None = None
    pfs_inferred: bool = False
    dh_group: int | None = None
    collision: bool = False
    deleted: float | None = None
    deleted_frame: int | None = None
    deleted_capture: int | None = None
    delete_inferred: bool = False
    lifetime: int | None = None
    lifetime_kb: int | None = None


class Child(_ChildFields):
    """A child SA (both directions), as far as it is known.

    What follows depends on the directions and the creating exchange, which are set when
    the child SA is made and never change: each is worked out once (they are asked for
    thousands of times, in sort keys among others) and kept in the instance's own dict,
    which holds only these (the fields are the slots of :class:`_ChildFields`)."""

    @_once
    def dirs(self) -> tuple[SaDir, ...]:
        return tuple(d for d in (self.dir_i, self.dir_r) if d is not None)

    @_once
    def packets(self) -> int:
        return sum(d.packets for d in self.dirs)

    @_once
    def first_packet(self) -> float | None:
        return min((d.first for d in self.dirs if d.packets), default=None)

    @_once
    def last_packet(self) -> float | None:
        return max((d.last for d in self.dirs if d.packets), default=None)

    @_once
    def created_event(self):
        """The message that completed the creating exchange: the answer;
        for Quick Mode the initiator's HASH(3), after which the responder
        may use the SA (RFC 2409 5.5)."""
        x = self.exchange
        if x is None:
            return None
        ans = x.answer
        if ans is None:
            return x.first
        if x.exchange_type == V1_QUICK:
            third = [e for e in x.requests if e.ts > ans.ts]
            if third:
                return min(third, key=lambda e: e.ts)
        return ans

    @_once
    def created(self) -> float | None:
        ev = self.created_event
        return ev.ts if ev is not None else None

    @_once
    def start(self) -> float | None:
        """Created, or first seen when made before the capture."""
        return self.created if self.created is not None else self.first_packet

    @_once
    def id(self) -> str:
        def t(s):
            return "?" if s is None else f"0x{s:08x}"
        return f"{t(self.spi_i)}/{t(self.spi_r)}"

    def successor(self) -> Child | None:
        """The SA that took over (a redundant collision SA takes over nothing)."""
        live = [c for c in self.successors if not c.collision]
        return live[0] if live else None


@dataclass(eq=False)
class IkeLife:
    """What the lifecycle says of one IKE SA."""

    sa: IkeSa
    exchanges: list[IkeExchange]
    peers: frozenset
    decrypted: bool  # some encrypted message of it was decrypted
    model: SizeModel | None = None
    established: float | None = None
    established_frame: int | None = None
    established_by: str | None = None
    established_frames: list[int] = field(default_factory=list)
    rekey_of: IkeSa | None = None
    rekey_exchange: IkeExchange | None = None
    rekey_inferred: bool = False
    successors: list[IkeSa] = field(default_factory=list)
    collision: bool = False
    deleted: float | None = None
    deleted_frame: int | None = None
    deleted_capture: int | None = None
    delete_inferred: bool = False
    role_swapped: bool | None = None
    rekey_enc: tuple | None = None  # (enc, integ, prf, dh_group) from a decrypted rekey proposal


@dataclass
class Lifecycle:
    """The result: per IKE SA, per child SA, per SA direction."""

    ike: dict[int, IkeLife]  # id(IkeSa) -> life
    ike_order: list[IkeLife]
    children: list[Child]
    dirs: dict[tuple, SaDir]  # tracker key -> direction
    captures: list[str]
    _by_ike: dict[int, list[Child]] | None = field(default=None, repr=False)  # children_of's index

    def of_sa(self, sa: IkeSa) -> IkeLife:
        return self.ike[id(sa)]

    def child_of(self, key) -> Child | None:
        d = self.dirs.get(key)
        return d.child if d is not None else None

    def children_of(self, sa: IkeSa) -> list[Child]:
        """The child SAs created under an IKE SA, in ``children`` order."""
        if self._by_ike is None:
            self._by_ike = {}
            for c in self.children:
                self._by_ike.setdefault(id(c.ike), []).append(c)
        return self._by_ike.get(id(sa), [])


# ---------------------------------------------------------------- payload helpers
_UNSEEN = (False, ())  # a side of an exchange with nothing in clear or decrypted


def _side(events, payloads_of, dec) -> tuple[bool, tuple]:
    """(visible, payloads) of one side of an exchange: cleartext messages and
    those decrypted with a key."""
    visible, out = False, []
    for ev in events:
        if ev.msg.encrypted:
            d = dec.get(id(ev))
            if d is None or d.status != "ok":
                continue
        visible = True
        out.extend(payloads_of(ev))
    return (True, tuple(out)) if visible else _UNSEEN


def _sa_proposals(payloads) -> list:
    return [pr for p in payloads if p.name == "SA" for pr in p.fields.get("proposals", ())]


def _ke(payloads):
    return next((p for p in payloads if p.name == "KE"), None)


def _nonce(payloads) -> bytes | None:
    p = next((p for p in payloads if p.name in ("Nonce", "NONCE")), None)
    return p.fields.get("data") if p is not None else None


def _attrs(prop) -> list:
    return [a for t in prop.transforms[:1] for a in t.attributes] if prop.transforms else []


def _v1_life(prop) -> tuple[int | None, int | None]:
    """IKEv1 SA Life Type / Duration pairs (RFC 2407 4.5): (seconds, kilobytes)."""
    secs = kb = None
    kind = None
    for a in _attrs(prop):
        if a.type == V1_LIFE_TYPE:
            kind = a.value
        elif a.type == V1_LIFE_DURATION:
            v = a.value if isinstance(a.value, int) else int.from_bytes(a.value, "big")
            if kind == 1:
                secs = v
            elif kind == 2:
                kb = v
    return secs, kb


def _v1_ids(payloads):
    ids = [p for p in payloads if p.name == "ID"]
    if len(ids) < 2:
        return ("peers",)
    key = tuple((p.fields.get("id_type"), str(p.fields.get("value")), p.fields.get("protocol"),
                 p.fields.get("port")) for p in ids[:2])
    return frozenset(key) if key[0] != key[1] else key


# ---------------------------------------------------------------- size model
@dataclass(frozen=True)
class SizeModel:
    """How long a CREATE_CHILD_SA or Quick Mode answer is with and without a
    KE payload, from the IKE SA's cipher, integrity, DH group and nonce
    length (all in clear in IKE_SA_INIT / phase 1) and an assumed shape of
    the rest: one proposal with ENCR (+ Key Length), INTEG (unless AEAD) and
    ESN transforms, one IPv4 (IPv6 when the peers are IPv6) traffic selector
    or ID per side.  The answer is used because it holds exactly one
    proposal.

    IKEv2 (RFC 7296 3.14): header 28 + SK header 4 + IV + plaintext padded
    so that plaintext + padding + pad length byte is a multiple of the
    block + ICV.  Plaintext of a child SA answer: SA (4 + 8 + 4 SPI +
    transforms of 8, +4 for a Key Length attribute, +8 for the DH transform
    with PFS) + Nonce (4 + length) + [KE (8 + public value)] + TSi + TSr
    (8 + 16 per IPv4 range, 8 + 40 per IPv6 range).  An IKE SA rekey
    answer: SA (4 + 8 + 8 SPI + ENCR, PRF, INTEG, DH) + Nonce + KE, no TS.

    IKEv1 (RFC 2409 5.5): header 28 + the body padded to the cipher block:
    HASH (4 + hash length) + SA (4 + DOI 4 + situation 4 + proposal 8 + SPI
    4 + transform 8 + attributes of 4: life type, life duration,
    encapsulation, authentication, key length, + group with PFS) + NONCE +
    [KE (4 + public value)] + IDci + IDcr (8 + address).

    Frozen: a model's expected lengths, and the kind of each length it is
    asked about, are worked out once each and kept (thousands of exchanges
    are weighed against the same few models).
    """

    version: int
    block: int = 16
    iv: int = 16
    icv: int = 16
    aead: bool = False
    keylen_attr: bool = True
    hash_len: int = 20
    group: int | None = None
    nonce: int = 32
    ipv6: bool = False
    _expected: dict = field(default_factory=dict, init=False, repr=False, compare=False)  # (kind, ipv6) -> length
    _classified: dict = field(default_factory=dict, init=False, repr=False, compare=False)  # (length, kinds) -> kind

    @property
    def publen(self) -> int:
        return alg.DH_PUBLIC_LEN.get(self.group, DEFAULT_PUBLEN) if self.group else DEFAULT_PUBLEN

    def _v2(self, plain: int) -> int:
        n = plain + 1
        return 28 + 4 + self.iv + n + (-n) % self.block + self.icv

    def _v1(self, body: int) -> int:
        return 28 + body + (-body) % self.block

    def expect(self, kind: str, ipv6: bool | None = None) -> int:
        """Expected answer length of a ``child``, ``child_pfs`` or ``ike_rekey``
        exchange (``ipv6``: the traffic selectors' family; default: the peers')."""
        v6 = self.ipv6 if ipv6 is None else ipv6
        got = self._expected.get((kind, v6))
        if got is None:
            got = self._expected[(kind, v6)] = self._expect(kind, v6)
        return got

    def _expect(self, kind: str, v6: bool) -> int:
        pfs = kind != "child"
        if self.version == 2:
            ts = 2 * (8 + (40 if v6 else 16))
            encr = 8 + (4 if self.keylen_attr else 0)
            integ = 0 if self.aead else 8
            nonce = 4 + self.nonce
            ke = 8 + self.publen
            if kind == "ike_rekey":
                return self._v2(4 + 8 + 8 + encr + 8 + integ + 8 + nonce + ke)
            sa = 4 + 8 + 4 + encr + integ + 8 + (8 if pfs else 0)
            return self._v2(sa + nonce + (ke if pfs else 0) + ts)
        attrs = 4 * (3 + (0 if self.aead else 1) + (1 if self.keylen_attr else 0) + (1 if pfs else 0))
        sa = 4 + 4 + 4 + 8 + 4 + 8 + attrs
        ids = 2 * (8 + (16 if v6 else 4))
        return self._v1(4 + self.hash_len + sa + 4 + self.nonce + ((4 + self.publen) if pfs else 0) + ids)

    def classify(self, length: int, kinds: tuple[str, ...]) -> str:
        """The kind whose expected length is nearest, with traffic selectors
        of the peers' address family or, one byte worse, of the other (a
        tunnel may carry the other family); ties: the first of ``kinds``.
        Kept by length: the messages of a long capture have a few lengths."""
        got = self._classified.get((length, kinds))
        if got is None:
            def miss(k):
                return min(abs(self.expect(k, self.ipv6) - length), abs(self.expect(k, not self.ipv6) - length) + 1)
            got = self._classified[(length, kinds)] = min(kinds, key=miss)
        return got


_HASH_LEN = {"md5": 16, "sha1": 20, "tiger": 24, "sha2-256": 32, "sha2-384": 48, "sha2-512": 64}


def _model(sa: IkeSa, ch, nonce_len: int | None) -> SizeModel:
    # the algorithm sizes are the ESP registry's; imported here, as the registry brings the
    # ciphers with it, which an analysis without keys never uses
    from .crypto.registry import ENC, INTEG

    f: dict = {}  # the SizeModel fields that differ from its defaults
    enc = ch.enc or ""
    base = enc
    for name in ENC:
        if enc == name or enc.startswith(name + "-"):
            base = name
    algo = ENC.get(base)
    if algo is not None:
        f["block"] = max(algo.block, 1) if algo.mode != "cbc" else algo.block
        f["iv"] = algo.iv_len
        f["icv"] = algo.icv_len
        f["aead"] = algo.aead
    f["keylen_attr"] = base in alg.VARIABLE_KEY or not base
    if not f.get("aead") and ch.integ:
        integ = INTEG.get(ch.integ)
        if integ is not None:
            f["icv"] = integ.icv_len
    if sa.version == 1:
        f["icv"], f["iv"] = 0, 0
        f["hash_len"] = _HASH_LEN.get(ch.hash_name or "", 20)
    f["group"] = ch.dh_group
    if nonce_len:
        f["nonce"] = nonce_len
    if sa.initiator is not None:
        f["ipv6"] = len(sa.initiator[0]) == 16
    return SizeModel(sa.version, **f)


def _nonce_len(sa: IkeSa) -> int | None:
    """Nonce length seen in clear (IKE_SA_INIT, IKEv1 phase 1)."""
    for ev in sa.events:
        if ev.msg.encrypted:
            continue
        for p in ev.msg.payloads:
            if p.name in ("Nonce", "NONCE") and p.fields.get("data_len"):
                return p.fields["data_len"]
    return None


# ---------------------------------------------------------------- the analysis
def build_lifecycle(tr: Tracker, sas: list[IkeSa], chosen: dict[int, object], payloads_of, dec: dict
                    ) -> Lifecycle:
    """Work out the lifecycle of every IKE SA and child SA.

    ``chosen`` maps id(IkeSa) to its :class:`~ipsecpcap.ikesa.Chosen`;
    ``payloads_of(event)`` gives the payloads visible in a message; ``dec``
    maps id(event) to its :class:`~ipsecpcap.ikedecrypt.Decrypted`.
    """
    return _Builder(tr, sas, chosen, payloads_of, dec).run()


class _Builder:
    def __init__(self, tr, sas, chosen, payloads_of, dec):
        self.tr = tr
        self.sas = sas
        self.chosen = chosen
        self.payloads_of = payloads_of
        self.dec = dec
        self.life: dict[int, IkeLife] = {}
        self.children: list[Child] = []
        self.dirs: dict[tuple, SaDir] = {}
        self.by_spi: dict[tuple[int, int], list[SaDir]] = {}
        self.claimed: set[int] = set()  # id(exchange) already explained
        self.side: dict[tuple[int, bool], tuple[bool, tuple]] = {}  # (id(exchange), answers) -> _side
        self.end_ts = tr.last_ts
        self.by_addr: dict[bytes, list[IkeSa]] = {}
        self._index: tuple[int, dict, dict] | None = None
        self._kinds: dict[int, tuple[SizeModel, str]] = {}  # id(exchange) -> (model, _kind)
        self._child_x: dict[int, list[IkeExchange]] = {}  # id(IkeSa) -> _child_exchanges
        self._info_x: dict[int, list[IkeExchange]] = {}  # id(IkeSa) -> _infos

    # -- plumbing
    def req(self, x: IkeExchange) -> tuple[bool, tuple]:
        return self._side_of(x, False)

    def resp(self, x: IkeExchange) -> tuple[bool, tuple]:
        return self._side_of(x, True)

    def _side_of(self, x: IkeExchange, answers: bool) -> tuple[bool, tuple]:
        events = x.responses if answers else x.requests
        if not self.dec:
            for ev in events:
                if not ev.msg.encrypted:
                    break
            else:
                return _UNSEEN  # nothing decrypted, nothing in clear (most exchanges of a long capture)
        k = (id(x), answers)
        got = self.side.get(k)
        if got is None:
            got = self.side[k] = _side(events, self.payloads_of, self.dec)
        return got

    def visible(self, x: IkeExchange) -> bool:
        return self.req(x)[0] or self.resp(x)[0]

    def run(self) -> Lifecycle:
        self._sa_dirs()
        for sa in self.sas:
            exs = group_exchanges(sa)
            # (the address pairs in the order first seen: the set is made as from every message)
            peers = frozenset(a for addrs in dict.fromkeys(ev.addrs for ev in sa.events) for a in split(addrs))
            decrypted = bool(self.dec) and any(d is not None and d.status in ("ok", "fragment")
                                               for ev in sa.events for d in (self.dec.get(id(ev)),))
            life = self.life[id(sa)] = IkeLife(sa, exs, peers, decrypted)
            life.model = _model(sa, self.chosen[id(sa)], _nonce_len(sa))
            for a in peers:
                self.by_addr.setdefault(a, []).append(sa)
        self._exact_ike_rekeys()
        self._exact_children()
        self._exact_deletes()
        self._inferred_ike_rekeys(by_size=True)
        self._inferred_children()
        self._inferred_ike_rekeys(by_size=False)
        self._phantoms()
        self._child_rekeys()
        self._collisions()
        self._pfs()
        self.kids: dict[int, list[Child]] = {}
        for c in self.children:
            if c.ike is not None:
                self.kids.setdefault(id(c.ike), []).append(c)
        self._ike_deletes()
        self._v1_ike_rekeys()
        self._rekeyed_ike_deletes()
        self._child_deletes()
        self._ike_summary()
        order = sorted(self.life.values(), key=lambda l: (l.sa.events[0].capture, l.sa.events[0].frame))
        self.children.sort(key=lambda c: (c.start if c.start is not None else float("inf"), c.id))
        return Lifecycle(self.life, order, self.children, self.dirs, list(self.tr.captures))

    def _sa_dirs(self) -> None:
        for key, s in self.tr.sas.items():
            proto, spi, addrs = key
            src, dst = split(addrs)
            d = SaDir(key, proto, spi, src, dst, s[SA_FIRST_TS], s[SA_LAST_TS], s[SA_FIRST_FRAME],
                      s[SA_LAST_FRAME], s[SA_FIRST_CAP], s[SA_PACKETS], s[SA_ENCAP] > 0)
            self.dirs[key] = d
            self.by_spi.setdefault((proto, spi), []).append(d)

    def _find_dir(self, proto: int, spi: int | None, dst: bytes | None) -> SaDir | None:
        if spi is None:
            return None
        cands = [d for d in self.by_spi.get((proto, spi), ()) if d.child is None]
        if not cands:
            return None
        exact = [d for d in cands if d.dst == dst]
        return (exact or cands)[0]

    def _attach(self, c: Child) -> None:
        for attr in ("dir_i", "dir_r"):
            d = getattr(c, attr)
            if d is not None:
                d.child = c

    def sas_of(self, ends) -> list[IkeSa]:
        """IKE SAs whose messages went between (at least) these addresses, in order."""
        it = iter(ends)
        cands = self.by_addr.get(next(it), [])
        return [sa for sa in cands if set(ends) <= self.life[id(sa)].peers]

    def lineage(self, sa: IkeSa | None) -> list[IkeSa]:
        """The IKE SA and those it rekeyed, transitively."""
        out = []
        while sa is not None and sa not in out:
            out.append(sa)
            sa = self.life[id(sa)].rekey_of
        return out

    def descendants(self, sa: IkeSa) -> list[IkeSa]:
        """The IKE SA and those that rekeyed it (where its child SAs moved)."""
        out, todo = [], [sa]
        while todo:
            s = todo.pop(0)
            if s in out:
                continue
            out.append(s)
            todo.extend(x for x in self.life[id(s)].successors if not self.life[id(x)].collision)
        return out

    # -- IKE SA rekeys (IKEv2)
    def _exact_ike_rekeys(self) -> None:
        by_pair = {(sa.version, sa.ispi, sa.rspi): sa for sa in self.sas}
        for sa in self.sas:
            if sa.version != 2:
                continue
            for x in self.life[id(sa)].exchanges:
                if x.exchange_type != V2_CREATE_CHILD_SA:
                    continue
                rq = [p for p in _sa_proposals(self.req(x)[1]) if p.protocol == PROTO_IKE and len(p.spi) == 8]
                rs = [p for p in _sa_proposals(self.resp(x)[1]) if p.protocol == PROTO_IKE and len(p.spi) == 8]
                if not (rq or rs):
                    continue
                self.claimed.add(id(x))
                if not (rq and rs):
                    continue
                new = by_pair.get((2, rq[0].spi, rs[0].spi))
                if new is None or new is sa:
                    continue
                ch = Chosen()
                _v2_chosen(rs[0], ch)
                self.life[id(new)].rekey_enc = (ch.enc, ch.integ, ch.prf, ch.dh_group)
                self._link_ike(new, sa, x, inferred=False)

    def _link_ike(self, new: IkeSa, old: IkeSa, x: IkeExchange | None, inferred: bool) -> None:
        ln, lo = self.life[id(new)], self.life[id(old)]
        ln.rekey_of, ln.rekey_exchange, ln.rekey_inferred = old, x, inferred
        lo.successors.append(new)
        if x is not None:
            self.claimed.add(id(x))
        # the size model of an IKE SA made by a rekey (nothing of it in clear):
        # the old one's, with the group of the rekey when it was decrypted
        if self.chosen[id(new)].enc is None:
            ln.model = replace(lo.model, group=ln.rekey_enc[3]) if ln.rekey_enc and ln.rekey_enc[3] \
                else replace(lo.model)

    def _inferred_ike_rekeys(self, by_size: bool) -> None:
        for sa in sorted(self.sas, key=lambda s: s.events[0].ts):
            ln = self.life[id(sa)]
            if sa.version != 2 or sa.mode is not None or ln.rekey_of is not None:
                continue
            start = sa.events[0].ts
            best = None
            for other in {id(o): o for a in ln.peers for o in self.by_addr.get(a, ())}.values():
                lo = self.life[id(other)]
                if other is sa or other.version != 2 or other.events[0].ts >= start:
                    continue
                if not (ln.peers <= lo.peers or lo.peers <= ln.peers):
                    continue  # not between the same peers
                for x in lo.exchanges:
                    if x.exchange_type != V2_CREATE_CHILD_SA or id(x) in self.claimed or x.ts >= start:
                        continue
                    if self.visible(x):
                        continue  # decrypted and not an IKE rekey
                    if by_size and self._kind(x) != "ike_rekey":
                        continue
                    if best is None or x.ts > best.ts:
                        best = x
            if best is not None:
                self._link_ike(sa, best.sa, best, inferred=True)

    def _kind(self, x: IkeExchange) -> str:
        """child | child_pfs | ike_rekey: what the size of an encrypted
        CREATE_CHILD_SA / Quick Mode says it carried.  Several steps ask
        about the same exchange: the answer is kept, with the size model it
        came from (an IKE SA found to be a rekey gets another model)."""
        m = self.life[id(x.sa)].model
        known = self._kinds.get(id(x))
        if known is not None and known[0] is m:
            return known[1]
        ev = x.answer or x.requests[0]
        kinds = ("child", "child_pfs", "ike_rekey") if x.sa.version == 2 else ("child", "child_pfs")
        length = ev.msg.length
        if x.answer is None and x.sa.version == 2:
            length -= 12  # the request's N(REKEY_SA)
        kind = m.classify(length, kinds)
        self._kinds[id(x)] = (m, kind)
        return kind

    def _could_create(self, x: IkeExchange) -> bool:
        """An encrypted CREATE_CHILD_SA / Quick Mode whose answer is long
        enough for SA, Nonce and traffic selectors (an error notify alone is
        far shorter)."""
        if x.answer is None:
            return True
        m = self.life[id(x.sa)].model
        return x.answer.msg.length >= m.expect("child", ipv6=False) - 2 * max(m.block, 16)

    # -- child SAs from decrypted exchanges
    def _child_exchanges(self, sa: IkeSa) -> list[IkeExchange]:
        """The exchanges of an IKE SA that can make child SAs (asked for again and again)."""
        found = self._child_x.get(id(sa))
        if found is None:
            want = (V2_IKE_AUTH, V2_CREATE_CHILD_SA) if sa.version == 2 else (V1_QUICK,)
            found = self._child_x[id(sa)] = [x for x in self.life[id(sa)].exchanges if x.exchange_type in want]
        return found

    def _exact_children(self) -> None:
        for sa in self.sas:
            for x in self._child_exchanges(sa):
                rq_vis, rq = self.req(x)
                rs_vis, rs = self.resp(x)
                if not (rq_vis or rs_vis) or id(x) in self.claimed:
                    continue
                rq_props = [p for p in _sa_proposals(rq) if p.protocol in IP_OF and len(p.spi) == 4]
                rs_props = [p for p in _sa_proposals(rs) if p.protocol in IP_OF and len(p.spi) == 4]
                if not rs_vis and not rq_props:
                    continue  # an undecrypted answer to a request without an SA: nothing to say
                # visible: it made these child SAs, or none (childless IKE_AUTH, an error, ...)
                self.claimed.add(id(x))
                for proto in dict.fromkeys(p.protocol for p in rs_props + rq_props):
                    pr = next((p for p in rq_props if p.protocol == proto), None)
                    ps = next((p for p in rs_props if p.protocol == proto), None)
                    if rs_vis and ps is None:
                        continue  # the answer is visible and accepted no proposal: refused (an error notify)
                    self.children.append(self._exact_child(x, IP_OF[proto], pr, ps, rq, rs))

    def _exact_child(self, x: IkeExchange, proto: int, pr, ps, rq: list, rs: list) -> Child:
        """A child SA from the proposals of a decrypted exchange: the
        request's SPI is the initiator's inbound SPI, the answer's the
        responder's (RFC 7296 3.3.1, RFC 2408 3.5)."""
        sa = x.sa
        c = Child(proto, sa, x, x.initiator, x.responder, exact=True)
        c.spi_r = int.from_bytes(pr.spi, "big") if pr is not None else None
        c.spi_i = int.from_bytes(ps.spi, "big") if ps is not None else None
        c.dir_i = self._find_dir(proto, c.spi_i, x.responder)
        c.dir_r = self._find_dir(proto, c.spi_r, x.initiator)
        self._attach(c)
        prop = ps or pr
        if x.exchange_type != V2_IKE_AUTH:  # IKE_AUTH: keyed from the IKE SA's own exchange, pfs null
            ke = _ke(rq + rs)
            c.pfs = ke is not None
            if ke is not None:
                c.dh_group = ke.fields.get("group")
                if sa.version == 1:  # IKEv1 KE has no group field: the SA's Group Description
                    g = next((a.value for a in _attrs(prop) if a.type == V1_GROUP), None) if prop else None
                    c.dh_group = g if g is not None else self.chosen[id(sa)].dh_group
        for p in rq:
            spi = p.fields.get("spi", b"")
            if p.name == "N" and p.fields.get("type") == N_REKEY_SA and len(spi) == 4:
                c.rekey_spi = int.from_bytes(spi, "big")
        if sa.version == 1:
            if prop is not None:
                c.lifetime, c.lifetime_kb = _v1_life(prop)
            c.ts_key = _v1_ids(rq if pr is not None else rs)
        c.nonces = tuple(n for n in (_nonce(rq), _nonce(rs)) if n)
        return c

    def _exact_deletes(self) -> None:
        by_cookies = {sa.ispi + sa.rspi: sa for sa in self.sas if sa.version == 1}
        for sa in self.sas:
            for x in self.life[id(sa)].exchanges:
                for ev in x.events:
                    if ev.msg.encrypted and not self.dec:
                        continue  # nothing decrypted: an encrypted message shows no payload
                    vis, pls = _side((ev,), self.payloads_of, self.dec)
                    if not vis:
                        continue
                    src, _dst = split(ev.addrs)
                    for p in pls:
                        if p.name != "D":
                            continue
                        proto = p.fields.get("protocol")
                        if proto == PROTO_IKE:
                            target = sa
                            if sa.version == 1:
                                spis = p.fields.get("spis") or ()
                                target = by_cookies.get(spis[0]) if spis else sa
                            if target is not None:
                                lt = self.life[id(target)]
                                if lt.deleted is None or ev.ts < lt.deleted:
                                    lt.deleted, lt.deleted_frame, lt.delete_inferred = ev.ts, ev.frame, False
                                    lt.deleted_capture = ev.capture
                        elif proto in IP_OF:
                            for spi in p.fields.get("spis") or ():
                                if len(spi) != 4:
                                    continue
                                n = int.from_bytes(spi, "big")
                                for c in self._children_with_spi(IP_OF[proto], n, src):
                                    if c.deleted is None or ev.ts < c.deleted:
                                        c.deleted, c.deleted_frame, c.deleted_capture = ev.ts, ev.frame, ev.capture
                                        c.delete_inferred = False

    def index(self) -> tuple[dict, dict]:
        """Child SAs by (proto, SPI) and by (proto, peers), rebuilt when more were added."""
        if self._index is None or self._index[0] != len(self.children):
            by_spi: dict[tuple, list[Child]] = {}
            by_ends: dict[tuple, list[Child]] = {}
            for c in self.children:
                for spi in {c.spi_i, c.spi_r} - {None}:
                    by_spi.setdefault((c.proto, spi), []).append(c)
                by_ends.setdefault((c.proto, frozenset((c.initiator, c.responder))), []).append(c)
            self._index = (len(self.children), by_spi, by_ends)
        return self._index[1], self._index[2]

    def _children_with_spi(self, proto: int, spi: int, receiver: bytes | None) -> list[Child]:
        """Child SAs that receive on this SPI at ``receiver`` (or anywhere)."""
        hits = []
        for c in self.index()[0].get((proto, spi), ()):
            if c.spi_i == spi and (receiver is None or c.responder == receiver):
                hits.append(c)
            elif c.spi_r == spi and (receiver is None or c.initiator == receiver):
                hits.append(c)
        if not hits and receiver is not None:
            return self._children_with_spi(proto, spi, None)
        return hits

    # -- child SAs inferred from ESP/AH directions
    def _inferred_children(self) -> None:
        free = [d for d in self.dirs.values() if d.child is None]
        # pair the two directions: reversed addresses, same protocol and
        # encapsulation, the closest first packets first (each direction is
        # weighed against its few nearest in time on the other side)
        buckets: dict[tuple, list[SaDir]] = {}
        for d in sorted(free, key=lambda d: (d.first, d.first_frame)):
            buckets.setdefault((d.proto, d.encap, d.src, d.dst), []).append(d)
        pairs = []
        for (proto, encap, src, dst), mine in buckets.items():
            theirs = buckets.get((proto, encap, dst, src))
            if not theirs or (src, dst) > (dst, src):
                continue
            starts = [d.first for d in theirs]
            for a in mine:
                i = bisect_left(starts, a.first)
                for b in theirs[max(0, i - PAIR_NEIGHBOURS):i + PAIR_NEIGHBOURS]:
                    pairs.append((abs(a.first - b.first), a.first_frame, a, b))
        pairs.sort(key=lambda p: (p[0], p[1]))
        mate: dict[int, SaDir] = {}
        for _gap, _f, a, b in pairs:
            if id(a) in mate or id(b) in mate:
                continue
            mate[id(a)], mate[id(b)] = b, a
        groups, seen = [], set()
        for d in sorted(free, key=lambda d: (d.first, d.first_frame)):
            if id(d) in seen:
                continue
            m = mate.get(id(d))
            seen.add(id(d))
            if m is not None:
                seen.add(id(m))
            groups.append([d] + ([m] if m is not None else []))
        groups.sort(key=lambda g: min(d.first for d in g))
        taken: set[tuple[int, int]] = set()  # (id(exchange), proto)
        for g in groups:
            first = min(d.first for d in g)
            proto = g[0].proto
            ends = {g[0].src, g[0].dst}
            best, best_key = None, None
            for sa in self.sas_of(ends):
                for x in self._child_exchanges(sa):
                    if (id(x), proto) in taken or (id(x) in self.claimed and self.visible(x)):
                        continue
                    if id(x) in self.claimed:
                        continue  # an IKE SA rekey
                    if x.exchange_type == V2_IKE_AUTH and not x.responses:
                        continue
                    if x.exchange_type != V2_IKE_AUTH and not self._could_create(x):
                        continue
                    if x.ts > first:
                        continue
                    k = (x.done if x.done is not None and x.done <= first else x.ts, x.ts)
                    if best_key is None or k > best_key:
                        best, best_key = x, k
            if best is not None:
                taken.add((id(best), proto))
                c = Child(proto, best.sa, best, best.initiator, best.responder)
            else:
                sa = self._ike_for(ends, first)
                ini = sa.initiator[0] if sa is not None and sa.initiator and sa.initiator[0] in ends else g[0].src
                resp = next(iter(ends - {ini}), g[0].dst)
                c = Child(proto, sa, None, ini, resp)
            for d in g:
                if d.src == c.initiator:
                    c.dir_i, c.spi_i = d, d.spi
                else:
                    c.dir_r, c.spi_r = d, d.spi
            self._attach(c)
            self.children.append(c)
        self._taken = taken

    def _ike_for(self, ends: set, ts: float) -> IkeSa | None:
        """The IKE SA between these peers alive at ``ts`` (for a child SA
        made before the capture began)."""
        cands = self.sas_of(ends)
        if not cands:
            return None
        before = [sa for sa in cands if sa.events[0].ts <= ts]
        if before:
            return max(before, key=lambda s: s.events[0].ts)
        return min(cands, key=lambda s: s.events[0].ts)

    def _phantoms(self) -> None:
        """Child-creating exchanges that were answered but whose SA never
        carried a packet (e.g. the redundant SA of a rekey collision): a
        child SA with unknown SPIs."""
        taken = {k[0] for k in self._taken}  # exchanges that made a child SA seen in packets
        esp_seen = any(d.proto == 50 for d in self.dirs.values()) or not self.dirs
        for sa in self.sas:
            for x in self._child_exchanges(sa):
                if id(x) in self.claimed or not x.responses or x.exchange_type == V2_IKE_AUTH:
                    continue
                if id(x) in taken:
                    continue
                if self.visible(x):
                    continue
                if sa.version == 2 and self._kind(x) == "ike_rekey":
                    continue  # the rekey of an IKE SA whose messages were not captured
                if not self._could_create(x):
                    continue
                c = Child(50, sa, x, x.initiator, x.responder)
                if sa.version == 2 or esp_seen:
                    c.proto = 50
                else:
                    c.proto = 51
                self.children.append(c)

    # -- child SA rekeys
    def _child_rekeys(self) -> None:
        ordered = sorted(self.children, key=lambda c: (c.start if c.start is not None else -1.0))
        for c in ordered:
            if c.exact and c.rekey_spi is not None:
                olds = [o for o in self._children_with_spi(c.proto, c.rekey_spi, c.initiator) if o is not c]
                if olds:
                    self._link_child(c, olds[0], inferred=False)
                continue
            if c.exact and c.ike is not None and c.ike.version == 1 and c.exchange is not None:
                old = self._v1_same_ids(c)
                if old is not None:
                    self._link_child(c, old, inferred=False)
                    continue
            if c.exact or c.exchange is None or c.exchange.exchange_type == V2_IKE_AUTH:
                continue
            if c.first_packet is None:
                continue  # a phantom: see _collisions
            old = self._timing_candidate(c)
            if old is not None:
                self._link_child(c, old, inferred=True)

    def _link_child(self, new: Child, old: Child, inferred: bool) -> None:
        new.rekey_of, new.rekey_inferred = old, inferred
        old.successors.append(new)

    def _v1_same_ids(self, c: Child) -> Child | None:
        lineage = set(map(id, self._v1_lineage(c.ike)))
        best = None
        for o in self.index()[1].get((c.proto, frozenset((c.initiator, c.responder))), ()):
            if o is c or o.ike is None or id(o.ike) not in lineage:
                continue
            if not o.exact or o.ts_key != c.ts_key or o.created is None or o.created >= c.exchange.ts:
                continue
            if o.successor() is not None:
                continue
            if o.deleted is not None and o.deleted < c.exchange.ts:
                continue
            if best is None or o.created > best.created:
                best = o
        return best

    def _v1_lineage(self, sa: IkeSa | None) -> list[IkeSa]:
        """IKEv1 child SAs outlive their ISAKMP SA's rekey: any ISAKMP SA of the same peers."""
        if sa is None:
            return []
        peers = self.life[id(sa)].peers
        return [s for s in self.sas_of(peers) if s.version == 1 and self.life[id(s)].peers == peers]

    def _timing_candidate(self, c: Child) -> Child | None:
        x = c.exchange
        ends = {c.initiator, c.responder}
        family = self.lineage(c.ike) if c.ike is not None and c.ike.version == 2 else self._v1_lineage(c.ike)
        fam = set(map(id, family))
        first, last = c.first_packet, c.last_packet
        best, best_gap = None, None
        for o in self.index()[1].get((c.proto, frozenset(ends)), ()):
            if o is c:
                continue
            if o.ike is not None and id(o.ike) not in fam:
                continue
            if o.successor() is not None or o.collision:
                continue
            start = o.start
            if start is None or start >= x.ts or o.last_packet is None:
                continue
            if o.last_packet > last + IN_FLIGHT:
                continue  # the old one outlives the new one: two SAs side by side
            if o.last_packet - first > REKEY_OVERLAP_MAX:
                continue
            if o.deleted is not None and o.deleted < x.ts:
                continue
            gap = abs(o.last_packet - first)
            if best_gap is None or gap < best_gap:
                best, best_gap = o, gap
        return best

    # -- collisions
    def _collisions(self) -> None:
        by_old: dict[int, list[Child]] = {}
        for c in self.children:
            if c.rekey_of is not None and not c.rekey_inferred:
                by_old.setdefault(id(c.rekey_of), []).append(c)
        for group in by_old.values():
            if len(group) < 2:
                continue
            # RFC 7296 2.8.1: the SA made with the lowest of the four nonces is redundant
            if all(len(c.nonces) == 2 for c in group):
                loser = min(group, key=lambda c: min(c.nonces))
            else:
                loser = min(group, key=lambda c: (c.packets, c.deleted or float("inf")))
            loser.collision = True
        # without keys: an answered CREATE_CHILD_SA whose SA never carried a
        # packet, crossing one of the other peer that made an SA with traffic
        # (of the same IKE SA: the child SAs are looked up by IKE SA, in order)
        by_ike: dict[int, list[Child]] = {}
        for c in self.children:
            by_ike.setdefault(id(c.ike), []).append(c)
        for p in self.children:
            if p.exact or p.first_packet is not None or p.exchange is None or p.ike is None:
                continue
            px = p.exchange
            for c in by_ike[id(p.ike)]:
                cx = c.exchange
                if c is p or cx is None or cx.initiator == px.initiator:
                    continue
                if cx.exchange_type != px.exchange_type or c.first_packet is None:
                    continue
                if px.ts <= (cx.done or cx.ts) and cx.ts <= (px.done or px.ts):
                    p.collision = True
                    if c.rekey_of is not None:
                        p.rekey_of, p.rekey_inferred = c.rekey_of, True
                        c.rekey_of.successors.append(p)
                    break
        # IKE SA rekey collisions (decrypted): two rekeys of one IKE SA
        for life in self.life.values():
            news = [self.life[id(s)] for s in life.successors if not self.life[id(s)].rekey_inferred]
            if len(news) < 2:
                continue
            nonces = {}
            for ln in news:
                x = ln.rekey_exchange
                ns = [n for n in (_nonce(self.req(x)[1]), _nonce(self.resp(x)[1])) if n] if x else []
                nonces[id(ln)] = min(ns) if len(ns) == 2 else None
            if all(v is not None for v in nonces.values()):
                min(news, key=lambda ln: nonces[id(ln)]).collision = True

    # -- PFS
    def _pfs(self) -> None:
        for c in self.children:
            if c.exact or c.exchange is None:
                continue
            x = c.exchange
            if x.exchange_type == V2_IKE_AUTH:
                c.pfs = None
                continue
            kind = self._kind(x)
            c.pfs = kind != "child"
            c.pfs_inferred = True
            c.dh_group = self.life[id(x.sa)].model.group if c.pfs else None

    # -- deletions
    def _infos(self, sa: IkeSa) -> list[IkeExchange]:
        """The INFORMATIONAL exchanges of an IKE SA (listed once: asked for per child SA)."""
        found = self._info_x.get(id(sa))
        if found is None:
            t = V2_INFORMATIONAL if sa.version == 2 else V1_INFORMATIONAL
            found = self._info_x[id(sa)] = [x for x in self.life[id(sa)].exchanges if x.exchange_type == t]
        return found

    def _ike_deletes(self) -> None:
        """An undecrypted IKE SA whose last exchange is an INFORMATIONAL, with
        nothing of it (messages, child SA traffic) after: deleted there."""
        for sa in self.sas:
            life = self.life[id(sa)]
            if life.deleted is not None or life.decrypted or not life.exchanges:
                continue
            last = max(life.exchanges, key=lambda x: x.ts)
            if last not in self._infos(sa):
                continue
            kids = [c for s in self.lineage(sa) for c in self.kids.get(id(s), ()) if c.last_packet is not None]
            if any(c.last_packet > last.ts + IN_FLIGHT for c in kids):
                continue
            if not kids and not life.successors and self._dpd_running(sa, last):
                continue
            life.deleted, life.deleted_frame, life.delete_inferred = last.ts, last.first.frame, True
            life.deleted_capture = last.first.capture

    def _dpd_running(self, sa: IkeSa, last: IkeExchange) -> bool:
        """Periodic INFORMATIONALs (liveness checks) and the capture ends
        before the next one was due: silence cannot be told from the end."""
        infos = sorted(x.ts for x in self._infos(sa))
        if len(infos) < 3 or self.end_ts is None:
            return False
        gaps = [b - a for a, b in zip(infos, infos[1:])]
        period = sorted(gaps)[len(gaps) // 2]
        return self.end_ts - last.ts < 1.5 * period

    def _v1_ike_rekeys(self) -> None:
        """IKEv1: a new Main/Aggressive Mode between the same peers while an
        older ISAKMP SA lives replaces it (there is no rekey exchange)."""
        v1 = sorted((s for s in self.sas if s.version == 1 and s.mode is not None), key=lambda s: s.events[0].ts)
        for sa in v1:
            start = sa.events[0].ts
            ln = self.life[id(sa)]
            best = None
            for old in self._v1_lineage(sa):
                lo = self.life[id(old)]
                if old is sa or old.mode is None or old.events[0].ts >= start or lo.successors:
                    continue
                if not self._v1_established(lo):
                    continue
                if lo.deleted is not None and lo.deleted < start:
                    continue
                if best is None or old.events[0].ts > best.events[0].ts:
                    best = old
            if best is not None:
                lo = self.life[id(best)]
                ln.rekey_of, ln.rekey_inferred = best, True
                lo.successors.append(sa)

    def _v1_established(self, life: IkeLife) -> bool:
        return self._establish(life)[0] is not None

    def _rekeyed_ike_deletes(self) -> None:
        """An undecrypted IKE SA that was rekeyed dies at its first
        INFORMATIONAL after the rekey."""
        for life in self.life.values():
            if not life.successors or life.decrypted:
                continue
            if life.deleted is not None and not life.delete_inferred:
                continue
            news = [self.life[id(s)] for s in life.successors]
            after = min((ln.rekey_exchange.ts if ln.rekey_exchange else s.events[0].ts)
                        for s, ln in zip(life.successors, news))
            infos = [x for x in self._infos(life.sa) if x.ts >= after]
            if infos:
                x = min(infos, key=lambda x: x.ts)
                life.deleted, life.deleted_frame, life.delete_inferred = x.ts, x.first.frame, True
                life.deleted_capture = x.first.capture

    def _holder(self, sa: IkeSa, until: float | None) -> IkeSa:
        """The IKE SA a child SA made under ``sa`` belongs to at ``until``
        (child SAs move to the new IKE SA when theirs is rekeyed; None: to
        the end)."""
        seen = {id(sa)}
        while True:
            nxt = [n for n in self.life[id(sa)].successors if not self.life[id(n)].collision]
            if not nxt or id(nxt[0]) in seen:
                return sa
            x = self.life[id(nxt[0])].rekey_exchange
            moved = x.ts if x is not None else nxt[0].events[0].ts
            if until is not None and moved > until:
                return sa
            sa = nxt[0]
            seen.add(id(sa))

    def _child_deletes(self) -> None:
        used: set[int] = set()
        for c in sorted(self.children, key=lambda c: (c.start if c.start is not None else -1.0)):
            if c.deleted is not None or c.ike is None:
                continue
            if not self.life[id(c.ike)].decrypted:
                # replaced (or the redundant SA of a collision): the first
                # INFORMATIONAL after the new SA was made, one per SA if it can be
                succ = None if c.collision else c.successor()
                after = c.exchange.ts if c.collision and c.exchange is not None else (
                    succ.exchange.ts if succ is not None and succ.exchange is not None else None)
                if after is not None:
                    holder = self._holder(c.ike, after)
                    infos = [x for s in (holder, self._holder(holder, None)) for x in self._infos(s)
                             if x.ts >= after and not self.life[id(s)].decrypted]
                    infos.sort(key=lambda x: x.ts)
                    pick = next((x for x in infos if id(x) not in used), infos[0] if infos else None)
                    if pick is not None:
                        used.add(id(pick))
                        c.deleted, c.deleted_frame, c.deleted_capture = pick.ts, pick.first.frame, pick.first.capture
                        c.delete_inferred = True
                        continue
            # deleted with the IKE SA it ended under (RFC 7296 1.4.1: closing
            # an IKE SA closes its child SAs)
            holder = self._holder(c.ike, None)
            lh = self.life[id(holder)]
            if lh.deleted is None:
                continue
            if c.last_packet is not None and c.last_packet > lh.deleted + IN_FLIGHT:
                continue
            if c.start is not None and c.start > lh.deleted:
                continue
            c.deleted, c.deleted_frame, c.delete_inferred = lh.deleted, lh.deleted_frame, lh.delete_inferred
            c.deleted_capture = lh.deleted_capture

    # -- IKE SA summary
    def _establish(self, life: IkeLife) -> tuple[float | None, int | None, str | None, list[int]]:
        sa = life.sa
        if life.rekey_exchange is not None:
            x = life.rekey_exchange
            ev = x.answer
            return (ev.ts if ev else None), (ev.frame if ev else None), x.name, [e.frame for e in x.events]
        if sa.mode is None:
            return None, None, None, []
        if sa.version == 2:
            init = [x for x in life.exchanges if x.exchange_type == V2_IKE_SA_INIT]
            auth = [x for x in life.exchanges if x.exchange_type == V2_IKE_AUTH and x.responses]
            if not auth:
                return None, None, None, [e.frame for x in init for e in x.events]
            last = max(auth, key=lambda x: x.mid)
            ev = last.answer
            vis, pls = self.resp(last)
            # RFC 7296 2.21.2: an IKE_AUTH answer with AUTH establishes the IKE SA even when it
            # refuses the child SA (NO_PROPOSAL_CHOSEN, TS_UNACCEPTABLE, ... beside AUTH); an error
            # without AUTH (AUTHENTICATION_FAILED, ...) does not
            if vis and not any(p.name == "AUTH" for p in pls) and any(
                    p.name == "N" and isinstance(p.fields.get("type"), int)
                    and 0 < p.fields["type"] <= V2_ERROR_MAX for p in pls):
                return None, None, None, [e.frame for x in init + auth for e in x.events]
            if not vis and not self._used_after(life, last):
                return None, None, None, [e.frame for x in init + auth for e in x.events]
            return ev.ts, ev.frame, last.name, [e.frame for x in init + auth for e in x.events]
        p1 = [x for x in life.exchanges if x.mid == 0]
        if not p1:
            return None, None, None, []
        x = p1[0]
        if sa.mode == "main":
            # RFC 2409 5: six messages, the last two encrypted (ID, HASH/SIG)
            done = [e for e in x.responses if e.msg.encrypted]
        else:
            # aggressive: the initiator's third message closes it
            done = x.requests[1:] if len(x.requests) > 1 else []
            if not done and x.responses and self._used_after(life, x):
                done = x.responses
        if not done:
            return None, None, None, [e.frame for e in x.events]
        ev = done[0]
        return ev.ts, ev.frame, x.name, [e.frame for e in x.events]

    def _used_after(self, life: IkeLife, x: IkeExchange) -> bool:
        """Anything of this IKE SA after an exchange: more exchanges or child SAs."""
        if any(y.ts > x.ts for y in life.exchanges if y is not x):
            return True
        return bool(self.kids.get(id(life.sa)))  # (the child SAs by IKE SA, made in run())

    def _ike_summary(self) -> None:
        for life in self.life.values():
            est, frame, by, frames = self._establish(life)
            life.established, life.established_frame, life.established_by = est, frame, by
            life.established_frames = frames
            if life.rekey_of is not None:
                old = self.life[id(life.rekey_of)].sa
                if life.sa.initiator and old.initiator:
                    life.role_swapped = life.sa.initiator[0] != old.initiator[0]


# ---------------------------------------------------------------- views
def child_sa_rows(lc: Lifecycle) -> list[ChildSaRow]:
    rows = []
    for c in lc.children:
        first, last = c.first_packet, c.last_packet
        succ = c.successor()
        overlap = None
        if succ is not None and last is not None and succ.first_packet is not None:
            overlap = max(0.0, min(last, succ.last_packet) - succ.first_packet)
        end = c.deleted if c.deleted is not None else last
        start = c.start
        x = c.exchange
        cap = next((d.capture for d in c.dirs), None)
        if cap is None and x is not None:
            cap = x.first.capture
        rows.append(ChildSaRow(
            id=c.id, protocol="esp" if c.proto == 50 else "ah",
            ike_sa=sa_id(c.ike) if c.ike is not None else None,
            initiator=addr_text(c.initiator) if c.initiator else None,
            responder=addr_text(c.responder) if c.responder else None,
            spi_i=spi_text(c.spi_i), spi_r=spi_text(c.spi_r),
            created_by=x.name if x is not None else None, created=c.created,
            created_frames=[e.frame for e in x.events] if x is not None else [],
            rekey_of=c.rekey_of.id if c.rekey_of is not None else (
                spi_text(c.rekey_spi) if c.rekey_spi is not None else None),
            rekey_inferred=c.rekey_inferred,
            rekeyed_by=succ.id if succ is not None else None,
            pfs=c.pfs, pfs_inferred=c.pfs_inferred, dh_group=c.dh_group, collision=c.collision,
            packets=c.packets, first_packet=first, last_packet=last,
            deleted=c.deleted, deleted_frame=c.deleted_frame, delete_inferred=c.delete_inferred,
            lifetime=c.lifetime, lifetime_kb=c.lifetime_kb,
            observed_lifetime=(end - start) if end is not None and start is not None else None,
            overlap=overlap,
            capture=lc.captures[cap] if cap is not None else None,
        ))
    return rows


def sa_fields(lc: Lifecycle | None, key: tuple) -> dict:
    """The lifecycle fields of one SA direction's row."""
    c = lc.child_of(key) if lc is not None else None
    if c is None:
        return dict(ike_sa=None, child_sa=None, peer_spi=None, created_by=None, created=None, created_frame=None,
                    rekey_of=None, rekey_inferred=False, pfs=None, pfs_inferred=False, dh_group=None,
                    collision=False, deleted=None, deleted_frame=None, delete_inferred=False)
    d = lc.dirs[key]
    mine_i = c.dir_i is d
    peer = c.spi_r if mine_i else c.spi_i
    old = c.rekey_of
    old_spi = None
    if old is not None:
        # the replaced SA in the same direction
        old_spi = old.spi_i if old.initiator == (c.initiator if mine_i else c.responder) else old.spi_r
    x = c.exchange
    return dict(
        ike_sa=sa_id(c.ike) if c.ike is not None else None, child_sa=c.id, peer_spi=spi_text(peer),
        created_by=x.name if x is not None else None, created=c.created,
        created_frame=c.created_event.frame if x is not None else None,
        rekey_of=spi_text(old_spi), rekey_inferred=c.rekey_inferred,
        pfs=c.pfs, pfs_inferred=c.pfs_inferred, dh_group=c.dh_group, collision=c.collision,
        deleted=c.deleted, deleted_frame=c.deleted_frame, delete_inferred=c.delete_inferred)


def ike_fields(lc: Lifecycle | None, sa: IkeSa) -> dict:
    """The lifecycle fields of one IKE SA's row."""
    life = lc.ike.get(id(sa)) if lc is not None else None
    if life is None:
        return dict(established=None, established_frame=None, established_by=None, established_frames=[],
                    rekey_of=None, rekey_inferred=False, rekeyed_by=None, role_swapped=None, collision=False,
                    deleted=None, deleted_frame=None, delete_inferred=False, observed_lifetime=None,
                    child_sas=0, quick_modes=0)
    start = life.established if life.established is not None else min(e.ts for e in sa.events)
    end = life.deleted if life.deleted is not None else max(e.ts for e in sa.events)
    kids = lc.children_of(sa)
    succ = [s for s in life.successors if not lc.ike[id(s)].collision]
    return dict(
        established=life.established, established_frame=life.established_frame,
        established_by=life.established_by, established_frames=life.established_frames,
        rekey_of=sa_id(life.rekey_of) if life.rekey_of is not None else None,
        rekey_inferred=life.rekey_inferred,
        rekeyed_by=sa_id(succ[0]) if succ else None,
        role_swapped=life.role_swapped, collision=life.collision,
        deleted=life.deleted, deleted_frame=life.deleted_frame, delete_inferred=life.delete_inferred,
        observed_lifetime=end - start,
        child_sas=len(kids),
        quick_modes=sum(1 for x in life.exchanges if x.exchange_type == V1_QUICK) if sa.version == 1 else 0,
    )


@dataclass
class Timeline:
    """The SA timeline as data: one bar per SA (IKE SA, and each child SA
    direction) and the events on it (established, rekey, delete, collision)."""

    bars: list[TimelineBar]
    events: list[TimelineEvent]

    def to_dict(self) -> dict:
        return {"bars": [b.to_dict() for b in self.bars], "events": [e.to_dict() for e in self.events]}

    def rows(self) -> list[dict]:
        """Bars and events as one list of flat rows (``ROW_FIELDS``) in time
        order, for CSV and text tables."""
        out = []
        for b in self.bars:
            out.append({"type": "bar", "kind": b.protocol, "start": b.start, "end": b.end, "frame": None,
                        "protocol": b.protocol, "sa": b.sa, "src": b.src, "dst": b.dst, "ike_sa": b.ike_sa,
                        "child_sa": b.child_sa, "packets": b.packets, "related": None, "inferred": None,
                        "capture": b.capture})
        for e in self.events:
            child = e.protocol in ("esp", "ah")
            out.append({"type": "event", "kind": e.kind, "start": e.ts, "end": None, "frame": e.frame,
                        "protocol": e.protocol, "sa": e.sa, "src": None, "dst": None, "ike_sa": e.ike_sa,
                        "child_sa": e.sa if child else None, "packets": None, "related": e.related,
                        "inferred": e.inferred, "capture": e.capture})
        out.sort(key=lambda r: (r["start"], r["type"] == "event", r["frame"] or 0))
        return out


ROW_FIELDS = ["type", "kind", "start", "end", "frame", "protocol", "sa", "src", "dst", "ike_sa", "child_sa",
              "packets", "related", "inferred", "capture"]


def timeline(lc: Lifecycle) -> Timeline:
    bars: list[TimelineBar] = []
    events: list[TimelineEvent] = []
    cap = lc.captures

    def event(kind, protocol, sa, ike_sa, ts, frame=None, capture=None, related=None, inferred=False):
        events.append(TimelineEvent(ts=ts, frame=frame, capture=cap[capture] if capture is not None else None,
                                    kind=kind, protocol=protocol, sa=sa, ike_sa=ike_sa, related=related,
                                    inferred=inferred))

    for life in lc.ike_order:
        sa = life.sa
        first, last = min(e.ts for e in sa.events), max(e.ts for e in sa.events)
        sid, proto, where = sa_id(sa), f"ikev{sa.version}", sa.events[0].capture
        bars.append(TimelineBar(
            protocol=proto, sa=sid, src=addr_text(sa.initiator[0]) if sa.initiator else None,
            dst=addr_text(sa.responder[0]) if sa.responder else None, ike_sa=sid, child_sa=None,
            start=life.established if life.established is not None else first,
            end=life.deleted if life.deleted is not None else last,
            first_seen=first, last_seen=last, packets=len(sa.events), deleted=life.deleted is not None,
            collision=life.collision, capture=cap[where]))
        if life.established is not None:
            event("ike_established", proto, sid, sid, life.established, life.established_frame, where)
        if life.rekey_of is not None:
            x = life.rekey_exchange
            ev = (x.answer or x.first) if x is not None else sa.events[0]
            old = sa_id(life.rekey_of)
            event("ike_rekey", proto, sid, old, ev.ts, ev.frame, ev.capture, old, life.rekey_inferred)
            if life.collision:
                event("rekey_collision", proto, sid, old, ev.ts, ev.frame, ev.capture, old, life.rekey_inferred)
        if life.deleted is not None:
            event("ike_deleted", proto, sid, sid, life.deleted, life.deleted_frame, life.deleted_capture,
                  inferred=life.delete_inferred)
    for c in lc.children:
        ike = sa_id(c.ike) if c.ike is not None else None
        proto = "esp" if c.proto == 50 else "ah"
        for d, spi, src, dst in ((c.dir_i, c.spi_i, c.initiator, c.responder),
                                 (c.dir_r, c.spi_r, c.responder, c.initiator)):
            seen = d is not None and d.packets > 0
            start = c.created if c.created is not None else (d.first if seen else None)
            end = c.deleted if c.deleted is not None else (d.last if seen else None)
            if start is None and end is None:
                continue
            where = d.capture if d is not None else (c.exchange.first.capture if c.exchange is not None else None)
            bars.append(TimelineBar(
                protocol=proto, sa=spi_text(spi), src=addr_text(src) if src else None,
                dst=addr_text(dst) if dst else None, ike_sa=ike, child_sa=c.id,
                start=start if start is not None else end, end=end if end is not None else start,
                first_seen=d.first if seen else None, last_seen=d.last if seen else None,
                packets=d.packets if d is not None else 0, deleted=c.deleted is not None,
                collision=c.collision, capture=cap[where] if where is not None else None))
        old = c.rekey_of.id if c.rekey_of is not None else None
        ev = c.created_event
        if ev is not None:
            event("child_rekey" if old else "child_created", proto, c.id, ike, ev.ts, ev.frame, ev.capture, old,
                  c.rekey_inferred if old else not c.exact)
            if c.collision:
                event("rekey_collision", proto, c.id, ike, ev.ts, ev.frame, ev.capture, old, not c.exact)
        if c.deleted is not None:
            event("child_deleted", proto, c.id, ike, c.deleted, c.deleted_frame, c.deleted_capture,
                  inferred=c.delete_inferred)
    bars.sort(key=lambda b: (b.start, b.protocol, b.sa or ""))
    events.sort(key=lambda e: (e.ts, e.frame or 0, e.kind))
    return Timeline(bars, events)
