"""IKE SA tracking: group IKE messages into IKE SAs and read what the
cleartext shows of each (chosen proposal, roles, NAT detection).

Messages are few, so this runs once over the merged message list at the end
(the hot path only collects them).  The grouping is a small state machine:

========================  ===============================================
message                    IKE SA it belongs to
========================  ===============================================
rspi == 0                  the latest SA with this ispi, else a new one
rspi != 0, pair known      that SA
rspi != 0, ispi open       the open SA, which now learns its rspi
rspi != 0, unknown         a new SA seen mid-life (mode None)
========================  ===============================================
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from functools import lru_cache

from . import algorithms as alg
from .dissectors.records import IkeMessage, Payload
from .tracker import IkeEvent

ZERO_SPI = b"\x00" * 8

# IKEv1 phase-1 attribute types (RFC 2409 appendix A)
V1_ATTR_ENC, V1_ATTR_HASH, V1_ATTR_AUTH, V1_ATTR_GROUP = 1, 2, 3, 4
V1_ATTR_LIFE_TYPE, V1_ATTR_LIFE_DURATION, V1_ATTR_PRF, V1_ATTR_KEYLEN = 11, 12, 13, 14
# IKEv2 transform types (RFC 7296 3.3.2) and the Key Length attribute (3.3.5)
V2_ENCR, V2_PRF, V2_INTEG, V2_DH = 1, 2, 3, 4
V2_ATTR_KEYLEN = 14
# Notify types
V2_NAT_SRC, V2_NAT_DST = 16388, 16389

V1_MODES = {2: "main", 4: "aggressive"}
V2_IKE_SA_INIT = 34

_HASHLIB = {"md5": "md5", "sha1": "sha1", "sha2-256": "sha256", "sha2-384": "sha384", "sha2-512": "sha512"}


@dataclass
class IkeSa:
    """An IKE SA being assembled from its messages (mutable, internal)."""

    version: int
    ispi: bytes
    rspi: bytes = ZERO_SPI
    initiator: tuple[bytes, int] | None = None  # (address, port) of the original initiator
    responder: tuple[bytes, int] | None = None
    mode: str | None = None
    events: list[IkeEvent] = field(default_factory=list)
    # mid -> sender address of the first message with that mid (IKEv1 response inference;
    # empty for IKEv2)
    first_sender: dict[int, bytes] = field(default_factory=dict)
    # group_exchanges(self), kept with the number of events it was made from: the lifecycle
    # and several rules ask for it
    _exchanges: tuple[int, list] | None = field(default=None, repr=False, compare=False)


# The same few addresses come back in every table and message: both helpers keep their
# recent answers, which saves the work and keeps one object per address in memory.
@lru_cache(maxsize=4096)
def addr_text(a: bytes) -> str:
    if len(a) == 4:
        return "%d.%d.%d.%d" % tuple(a)  # as inet_ntop writes it
    import socket  # (only for IPv6: the socket module is 5 ms of every start otherwise)

    return socket.inet_ntop(socket.AF_INET6, a)


@lru_cache(maxsize=4096)
def split(addrs: bytes) -> tuple[bytes, bytes]:
    """Source||destination -> (source, destination)."""
    h = len(addrs) >> 1
    return addrs[:h], addrs[h:]


def group_ike_sas(events: list[IkeEvent]) -> list[IkeSa]:
    """Group the messages (sorted by capture and frame) into IKE SAs, in order of appearance."""
    sas: list[IkeSa] = []
    by_pair: dict[tuple, IkeSa] = {}
    open_by_ispi: dict[tuple, IkeSa] = {}
    latest: dict[tuple, IkeSa] = {}
    for ev in events:
        m = ev.msg
        v = m.version
        if m.rspi == ZERO_SPI:
            # the first message(s), a retransmission, or an error notify sent
            # before the responder's SPI was learnt: the latest SA of this ispi
            sa = open_by_ispi.get((v, m.ispi)) or latest.get((v, m.ispi))
            if sa is None:
                sa = IkeSa(v, m.ispi)
                sas.append(sa)
                open_by_ispi[(v, m.ispi)] = sa
        else:
            sa = by_pair.get((v, m.ispi, m.rspi))
            if sa is None:
                sa = open_by_ispi.pop((v, m.ispi), None)
                if sa is None:
                    sa = IkeSa(v, m.ispi)
                    sas.append(sa)
                sa.rspi = m.rspi
                by_pair[(v, m.ispi, m.rspi)] = sa
        latest[(v, m.ispi)] = sa
        if not sa.events:
            _set_roles(sa, ev, *split(ev.addrs))
        sa.events.append(ev)
        if v != 2:  # (IKEv2 says which message answers in its R flag: see is_response)
            sa.first_sender.setdefault(m.mid, split(ev.addrs)[0])
    return sas


def _set_roles(sa: IkeSa, ev: IkeEvent, src: bytes, dst: bytes) -> None:
    m = ev.msg
    if m.version == 2 and m.initiator_flag is not None:
        # RFC 7296 3.1: the I flag is set by the original initiator of the IKE SA
        is_init = m.initiator_flag
    else:
        # IKEv1: the initiator sends the first message (responder cookie still
        # zero); when the capture starts later, the first sender seen is taken
        # as the initiator, a best guess
        is_init = True
    if is_init:
        sa.initiator, sa.responder = (src, ev.sport), (dst, ev.dport)
    else:
        sa.initiator, sa.responder = (dst, ev.dport), (src, ev.sport)
    if m.version == 2:
        sa.mode = "ike_sa_init" if m.exchange_type == V2_IKE_SA_INIT else None
    else:
        sa.mode = V1_MODES.get(m.exchange_type) if m.rspi == ZERO_SPI else None


def is_initiator(sa: IkeSa, ev: IkeEvent) -> bool | None:
    m = ev.msg
    if m.version == 2 and m.initiator_flag is not None:
        return m.initiator_flag
    if sa.initiator is None:
        return None
    return split(ev.addrs)[0] == sa.initiator[0]


def is_response(sa: IkeSa, ev: IkeEvent) -> bool | None:
    m = ev.msg
    if m.version == 2 and m.response_flag is not None:
        return m.response_flag
    src = split(ev.addrs)[0]
    if m.mid == 0:
        # IKEv1 phase 1: the responder's messages answer the initiator's
        return None if sa.initiator is None else src != sa.initiator[0]
    # phase 2 / informational: whoever sent the first message of this
    # message ID started the exchange; the other side answers
    first = sa.first_sender.get(m.mid)
    return None if first is None else src != first


# ---------------------------------------------------------------- exchanges
@dataclass(eq=False, slots=True)
class IkeExchange:
    """One exchange of an IKE SA: the request (with its retransmissions and,
    for IKEv1 Quick Mode, the initiator's third message) and the answers.
    Made complete by :func:`group_exchanges` (see :meth:`of`); the lifecycle
    and the rules read its fields many times over."""

    sa: IkeSa
    name: str  # exchange name, as in the exchanges table
    exchange_type: int
    mid: int
    initiator: bytes | None  # address of the peer that sent the request
    responder: bytes | None
    by_sa_initiator: bool | None  # started by the IKE SA's original initiator
    requests: tuple[IkeEvent, ...]
    responses: tuple[IkeEvent, ...]
    events: tuple[IkeEvent, ...]  # both, in capture order
    answer: IkeEvent | None  # the first answer (by time), None if no answer was captured
    ts: float  # when it started (its first message)
    done: float | None  # when it was answered (the first answer), None if no answer was captured

    @property
    def first(self) -> IkeEvent:
        return self.events[0]

    @classmethod
    def of(cls, sa: IkeSa, name: str, exchange_type: int, mid: int, initiator: bytes | None,
           responder: bytes | None, by_sa_initiator: bool | None, requests, responses) -> "IkeExchange":
        """The exchange of these messages, its events, answer and times worked out."""
        rq, rs = tuple(requests), tuple(responses)
        one_side = rs if not rq else rq if not rs else None
        if one_side is not None and (len(one_side) == 1 or _in_capture_order(one_side)):
            events = one_side  # one side only, in order already (the usual case): no copy
        else:
            events = tuple(sorted(rq + rs, key=_capture_order))
        answer = (rs[0] if len(rs) == 1 else min(rs, key=_ts)) if rs else None
        return cls(sa, name, exchange_type, mid, initiator, responder, by_sa_initiator, rq, rs, events, answer,
                   events[0].ts, answer.ts if answer is not None else None)


def _capture_order(e: IkeEvent) -> tuple[int, int]:
    return e.capture, e.frame


def _in_capture_order(events: tuple[IkeEvent, ...]) -> bool:
    return all(_capture_order(a) <= _capture_order(b) for a, b in zip(events, events[1:]))


def _ts(e: IkeEvent) -> float:
    return e.ts


def group_exchanges(sa: IkeSa) -> list[IkeExchange]:
    """The exchanges of an IKE SA in order of their first message.

    IKEv2 message IDs count per direction (RFC 7296 2.2), so an exchange is
    (message ID, which side started it); the side comes from the I and R
    flags.  IKEv1 phase 1 is message ID 0; every later exchange has its own
    random message ID (RFC 2408 3.1), started by whoever sent it first.

    Made once per IKE SA (and again only if messages were added since).
    """
    if sa._exchanges is not None and sa._exchanges[0] == len(sa.events):
        return sa._exchanges[1]
    # key -> [name, type, mid, initiator, responder, by_sa_initiator, requests, answers], in order of
    # first message; the IkeExchange objects are made at the end, complete
    by_key: dict[tuple, list] = {}
    for ev in sa.events:
        m = ev.msg
        if m.version == 2:
            # RFC 7296 3.1: the I flag (0x08) is the original initiator's, R (0x20) marks an answer
            flags = m.flags
            i_flag, resp = bool(flags & 0x08), bool(flags & 0x20)
            by_init = (not i_flag) if resp else i_flag
            key: tuple = (m.mid, by_init)
        else:
            resp = bool(is_response(sa, ev))
            by_init = None
            if sa.initiator is not None:
                starter = sa.first_sender.get(m.mid)
                if starter is None:
                    starter = split(ev.addrs)[0]
                by_init = starter == sa.initiator[0]
            key = (m.mid,)
        x = by_key.get(key)
        if x is None:
            src, dst = split(ev.addrs)
            x = by_key[key] = [m.exchange, m.exchange_type, m.mid, dst if resp else src, src if resp else dst,
                               by_init, [], []]
        x[7 if resp else 6].append(ev)
    out = [IkeExchange.of(sa, *x) for x in by_key.values()]
    sa._exchanges = (len(sa.events), out)
    return out


# ---------------------------------------------------------------- chosen proposal
@dataclass
class Chosen:
    enc: str | None = None
    integ: str | None = None
    prf: str | None = None
    dh_group: int | None = None
    auth_method: str | None = None
    lifetime: int | None = None
    lifetime_kb: int | None = None
    hash_name: str | None = None  # IKEv1 negotiated hash, for NAT-D


def _sa_payload(m: IkeMessage) -> Payload | None:
    for p in m.payloads:
        if p.name == "SA" and p.fields.get("proposals"):
            return p
    return None


def chosen_proposal(sa: IkeSa) -> Chosen:
    """What the cleartext shows of the negotiated IKE SA proposal: the
    responder's SA payload (it holds exactly the one chosen), or the
    initiator's when it offered a single transform."""
    resp, offer = None, None
    for ev in sa.events:
        m = ev.msg
        if not m.payloads:  # (most messages: encrypted, nothing in clear)
            continue
        if m.encrypted and m.version == 1:
            continue
        if m.version == 2 and m.exchange_type != V2_IKE_SA_INIT:
            continue
        if m.version == 1 and m.mid != 0:
            continue
        p = _sa_payload(m)
        if p is None:
            continue
        if is_response(sa, ev):
            resp = resp or (m, p)
        else:
            offer = offer or (m, p)
    ch = Chosen()
    pick = resp
    if pick is None and offer is not None:
        props = offer[1].fields["proposals"]
        if len(props) == 1 and (sa.version == 2 or len(props[0].transforms) == 1):
            pick = offer
    if pick is None:
        return _dh_from_ke(sa, ch)
    prop = pick[1].fields["proposals"][0]
    if sa.version == 1:
        _v1_chosen(prop, ch)
    else:
        _v2_chosen(prop, ch)
    return _dh_from_ke(sa, ch)


def _v1_chosen(prop, ch: Chosen) -> None:
    if not prop.transforms:
        return
    attrs = prop.transforms[0].attributes
    vals: dict[int, int] = {}
    life_type = None
    for a in attrs:
        if not isinstance(a.value, int):
            continue
        if a.type == V1_ATTR_LIFE_TYPE:
            life_type = a.value
        elif a.type == V1_ATTR_LIFE_DURATION:
            # RFC 2409 appendix A: a Life Duration follows the Life Type it applies to
            if life_type == 1:
                ch.lifetime = a.value
            elif life_type == 2:
                ch.lifetime_kb = a.value
        else:
            vals.setdefault(a.type, a.value)
    ch.enc = alg.v1_encr(vals.get(V1_ATTR_ENC), vals.get(V1_ATTR_KEYLEN))
    ch.hash_name = alg.v1_hash(vals.get(V1_ATTR_HASH))
    if ch.hash_name:
        ch.integ = f"hmac-{ch.hash_name}"
        ch.prf = f"prf-hmac-{ch.hash_name}"
    if V1_ATTR_PRF in vals:
        ch.prf = f"unknown-v1-prf-{vals[V1_ATTR_PRF]}"  # RFC 2409 defines no PRF values
    ch.auth_method = alg.v1_auth(vals.get(V1_ATTR_AUTH))
    ch.dh_group = vals.get(V1_ATTR_GROUP)


def _v2_chosen(prop, ch: Chosen) -> None:
    for t in prop.transforms:
        if t.type == V2_ENCR and ch.enc is None:
            keylen = next((a.value for a in t.attributes if a.type == V2_ATTR_KEYLEN and isinstance(a.value, int)), None)
            ch.enc = alg.v2_encr(t.id, keylen)
        elif t.type == V2_PRF and ch.prf is None:
            ch.prf = alg.v2_prf(t.id)
        elif t.type == V2_INTEG and ch.integ is None:
            ch.integ = alg.v2_integ(t.id)
        elif t.type == V2_DH and ch.dh_group is None:
            ch.dh_group = t.id


def _dh_from_ke(sa: IkeSa, ch: Chosen) -> Chosen:
    if ch.dh_group is None and sa.version == 2:
        for ev in sa.events:
            for p in ev.msg.payloads:
                if p.name == "KE" and isinstance(p.fields.get("group"), int) and is_response(sa, ev):
                    ch.dh_group = p.fields["group"]
                    return ch
    return ch


# ---------------------------------------------------------------- NAT detection
def nat_detected(sa: IkeSa, ch: Chosen) -> bool | None:
    """Recompute the NAT-D hashes from the addresses seen on the wire.

    IKEv2 (RFC 7296 2.23): NAT_DETECTION_SOURCE_IP / _DESTINATION_IP carry
    SHA-1(SPIi | SPIr | IP | port) of the sender / receiver.  IKEv1
    (RFC 3947 3.2): NAT-D payloads carry HASH(CKY-I | CKY-R | IP | port)
    with the negotiated hash, the first for the receiver, the rest for the
    sender.  True when a hash disagrees with what was observed, False when
    all agree, None when there were none to check.
    """
    checked = False
    for ev in sa.events:
        m = ev.msg
        if m.version == 1 and m.encrypted:
            continue
        src, dst = split(ev.addrs)
        if m.version == 2:
            for p in m.payloads:
                if p.name != "N" or p.fields.get("type") not in (V2_NAT_SRC, V2_NAT_DST):
                    continue
                ip, port = (src, ev.sport) if p.fields["type"] == V2_NAT_SRC else (dst, ev.dport)
                want = hashlib.sha1(m.ispi + m.rspi + ip + port.to_bytes(2, "big")).digest()
                checked = True
                if p.fields.get("data") != want:
                    return True
        else:
            hname = _HASHLIB.get(ch.hash_name or "")
            nats = [p.fields.get("hash") for p in m.payloads if p.name == "NAT-D"]
            if not nats or hname is None:
                continue

            def h(ip: bytes, port: int) -> bytes:
                return hashlib.new(hname, m.ispi + m.rspi + ip + port.to_bytes(2, "big")).digest()

            checked = True
            if nats[0] != h(dst, ev.dport):
                return True
            if len(nats) > 1 and h(src, ev.sport) not in nats[1:]:
                return True
    return False if checked else None


def vendor_ids(sa: IkeSa) -> list[str]:
    out: list[str] = []
    for ev in sa.events:
        for p in ev.msg.payloads:
            if p.name in ("VID", "V"):
                name = p.fields.get("name") or (p.fields.get("data") or b"").hex()
                if name not in out:
                    out.append(name)
    return out


def notify_errors(sa: IkeSa) -> list[str]:
    """Error notifies (IKEv1 and IKEv2 types below 16384) in cleartext."""
    out: list[str] = []
    for ev in sa.events:
        for p in ev.msg.payloads:
            if p.name == "N" and isinstance(p.fields.get("type"), int) and 0 < p.fields["type"] < 16384:
                name = p.fields.get("type_name") or str(p.fields["type"])
                if name not in out:
                    out.append(name)
    return out


# ---------------------------------------------------------------- child SAs
# IPsec DOI attribute types (RFC 2407 4.5) and IKEv2 transform types
V1_IPSEC_ATTR_AUTH, V1_IPSEC_ATTR_KEYLEN = 5, 6
PROTO_AH, PROTO_ESP = 2, 3


def proposal_algorithms(version: int, prop) -> tuple[str | None, str | None]:
    """(enc, integ) of an ESP or AH proposal with one transform of each kind
    chosen, in the canonical names of ipsecpcap.algorithms."""
    enc = integ = None
    if version == 2:
        for t in prop.transforms:
            if t.type == V2_ENCR and enc is None:
                keylen = next((a.value for a in t.attributes
                               if a.type == V2_ATTR_KEYLEN and isinstance(a.value, int)), None)
                enc = alg.v2_encr(t.id, keylen)
            elif t.type == V2_INTEG and integ is None:
                integ = alg.v2_integ(t.id)
        if prop.protocol == PROTO_ESP and enc in alg.AEAD and integ is None:
            integ = "none"
        return enc, integ
    if not prop.transforms:
        return None, None
    t = prop.transforms[0]
    attrs = {a.type: a.value for a in t.attributes if isinstance(a.value, int)}
    if prop.protocol == PROTO_ESP:
        enc = alg.v1_esp_encr(t.id, attrs.get(V1_IPSEC_ATTR_KEYLEN))
        integ = alg.v1_ipsec_integ(attrs[V1_IPSEC_ATTR_AUTH]) if V1_IPSEC_ATTR_AUTH in attrs else \
            ("none" if enc in alg.AEAD else None)
    elif prop.protocol == PROTO_AH:
        integ = alg.v1_ah(t.id)
    return enc, integ


def child_sa_algorithms(sas: list[IkeSa], payloads_of) -> dict[int, tuple[str | None, str | None]]:
    """SPI -> (enc, integ) of the ESP/AH SAs the IKE exchanges negotiated.

    ``payloads_of(event)`` gives the payloads visible in a message (cleartext
    and decrypted).  The algorithms come from the answer's SA payload (it
    holds the one chosen proposal); the SPIs from both sides' proposals of
    the same exchange (each side names the SPI it receives on).
    """
    out: dict[int, tuple[str | None, str | None]] = {}
    for sa in sas:
        exchanges: dict[int, list] = {}
        for ev in sa.events:
            for p in payloads_of(ev):
                if p.name == "SA":
                    props = [x for x in p.fields.get("proposals", ()) if x.protocol in (PROTO_AH, PROTO_ESP)]
                    if props:
                        exchanges.setdefault(ev.msg.mid, []).append((is_response(sa, ev), props))
        for found in exchanges.values():
            answer = next((props for resp, props in found if resp), None)
            if answer is None:
                continue
            algos = {prop.protocol: proposal_algorithms(sa.version, prop) for prop in answer}
            for _resp, props in found:
                for prop in props:
                    if len(prop.spi) == 4 and prop.protocol in algos:
                        out[int.from_bytes(prop.spi, "big")] = algos[prop.protocol]
    return out


def identities(sa: IkeSa, payloads_of) -> tuple[str | None, str | None]:
    """(initiator, responder) identity from ID / IDi / IDr payloads, in clear or decrypted."""
    ini = res = None
    for ev in sa.events:
        for p in payloads_of(ev):
            value = p.fields.get("value") if p.name in ("ID", "IDi", "IDr") else None
            if value is None:
                continue
            value = str(value)
            if p.name == "IDi" or (p.name == "ID" and ev.msg.mid == 0 and is_initiator(sa, ev)):
                ini = ini or value
            elif p.name == "IDr" or (p.name == "ID" and ev.msg.mid == 0 and not is_initiator(sa, ev)):
                res = res or value
    return ini, res


def auth_method(sa: IkeSa, payloads_of) -> str | None:
    """IKEv2: the authentication method of the first AUTH payload (usually decrypted)."""
    for ev in sa.events:
        for p in payloads_of(ev):
            if p.name == "AUTH" and isinstance(p.fields.get("method"), int):
                return alg.v2_auth(p.fields["method"])
    return None
