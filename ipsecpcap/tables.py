"""Build the table rows (``ipsecpcap.records``) from a (merged) tracker.

Rows are sorted deterministically: exchanges by capture and frame, IKE SAs
by first appearance, SAs and flows by first frame.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property
from operator import attrgetter
from typing import TYPE_CHECKING

import numpy as np

from .algorithms import cipher
from .ikesa import (addr_text, auth_method, child_sa_algorithms, chosen_proposal, group_ike_sas, identities,
                    is_initiator, is_response, nat_detected, notify_errors, split, vendor_ids)
from .lifecycle import Lifecycle, build_lifecycle, ike_fields, sa_fields
from .records import ExchangeRow, FlowRow, IkeSaRow, SaRow
from .sequence import sa_row_fields
from .tracker import (ICMP_ERROR_REV, SA_BYTES, SA_ENCAP,
                      SA_FIRST_CAP, SA_FIRST_FRAME, SA_FIRST_TS, SA_FRAGMENTS, SA_INNER, SA_LAST_CAP,
                      SA_LAST_FRAME, SA_LAST_TS, SA_PACKETS, SA_SEQ_FIRST, SA_SEQ_LAST, TCP_FIRST_SYN,
                      TCP_RST_REV, TCP_SYNACK_REV, Tracker, sa_sequence)

if TYPE_CHECKING:  # keys and ESP decryption are imported when keys are given
    from .keymodel import KeyStore
    from .sacrypto import SaCrypto

PROTO_NAMES = {1: "icmp", 2: "igmp", 4: "ipip", 6: "tcp", 17: "udp", 41: "ipv6", 47: "gre", 50: "esp",
               51: "ah", 58: "icmpv6", 59: "none", 89: "ospf", 103: "pim", 112: "vrrp", 132: "sctp"}


def proto_name(n: int) -> str:
    return PROTO_NAMES.get(n, str(n))


def _hex(spi: bytes) -> str:
    return spi.hex()


def _ordered_events(tr: Tracker) -> list:
    """The IKE messages by capture and frame: the tracker's own list when they came in that
    order (they do, but for a merge of captures given out of order), not a copy of it kept
    for as long as the tables.  (Sorting what is in order already, and comparing, is the
    quickest way to tell.)"""
    evs = tr.ike_events
    ordered = sorted(evs, key=_CAPTURE_FRAME)
    return evs if ordered == evs else ordered


_CAPTURE_FRAME = attrgetter("capture", "frame")


@dataclass
class IkeView:
    """The IKE side of the tables and what it was built from.  The exchanges
    table (one row per message) is built on first use: a summary only counts
    the messages."""

    ike: list[IkeSaRow]
    child_algorithms: dict[int, tuple[str | None, str | None]]  # SPI -> (enc, integ) negotiated
    lifecycle: Lifecycle | None = None
    sas: list = field(default_factory=list)  # the IkeSa groups (ipsecpcap.ikesa), in table order
    payloads_of: Callable | None = None  # IkeEvent -> its payloads, decrypted ones included
    events: list = field(default_factory=list, repr=False)  # the messages, by capture and frame
    decrypted: dict = field(default_factory=dict, repr=False)  # id(event) -> ikedecrypt.Decrypted (none: no key)
    captures: list[str] = field(default_factory=list, repr=False)

    _shown: dict = field(default_factory=dict, repr=False)  # shown()'s answers, by id(IkeSa)
    _readable: dict = field(default_factory=dict, repr=False)  # shown_events()'s answers, by id(IkeSa)

    @cached_property
    def exchanges(self) -> list[ExchangeRow]:
        return exchange_rows(self)

    def shown(self, sa) -> dict[int, tuple]:
        """id(message) -> its payloads, for the messages of an IKE SA that show any (in
        clear or decrypted), in message order.  Most messages of a long capture are
        encrypted and show none: the rules that look at payloads skip them through this.
        Made once per IKE SA."""
        got = self._shown.get(id(sa))
        if got is None:
            payloads_of = self.payloads_of
            got = self._shown[id(sa)] = {id(ev): pls for ev in sa.events if (pls := payloads_of(ev))}
        return got

    def shown_events(self, sa) -> list:
        """The messages of an IKE SA that show payloads (the keys of :meth:`shown`), in message order."""
        got = self._readable.get(id(sa))
        if got is None:
            shown = self.shown(sa)
            got = self._readable[id(sa)] = [ev for ev in sa.events if id(ev) in shown] if shown else []
        return got


def ike_tables(tr: Tracker, store: KeyStore | None = None) -> IkeView:
    events = _ordered_events(tr)
    sas = group_ike_sas(events)
    chosen = {id(sa): chosen_proposal(sa) for sa in sas}
    if store is not None and (store.ikev1 or store.ikev2):
        from .ikedecrypt import decrypt_ike  # (and the ciphers: only with keys)

        dec, dec_sa = decrypt_ike(sas, chosen, store)
    else:
        dec, dec_sa = {}, {}

    if dec:
        def payloads_of(ev):
            d = dec.get(id(ev))
            return ev.msg.payloads + d.payloads if d is not None else ev.msg.payloads
    else:
        def payloads_of(ev):  # nothing decrypted: what was in clear
            return ev.msg.payloads

    lc = build_lifecycle(tr, sas, chosen, payloads_of, dec)
    rows = []
    shown: dict[int, dict[int, tuple]] = {}  # id(IkeSa) -> IkeView.shown(sa)
    readable = []  # each IKE SA with only its messages that show payloads
    shown_events: dict[int, list] = {}  # id(IkeSa) -> IkeView.shown_events(sa)
    for sa in sas:
        ch = chosen[id(sa)]
        info = dec_sa.get(id(sa))
        rekeyed = lc.of_sa(sa).rekey_enc  # a rekeyed IKE SA: the proposal of its (decrypted) rekey
        if ch.enc is None and rekeyed is not None:
            ch.enc, ch.integ, ch.prf, ch.dh_group = rekeyed
        evs = sa.events
        first, last = evs[0], evs[-1]
        # The helpers below look at payloads and nothing else: they are given the IKE SA with only
        # its messages that show some (in clear or decrypted), a few of hundreds in a long capture.
        got = shown[id(sa)] = {}
        kept = []
        for ev in evs:
            if pls := payloads_of(ev):
                got[id(ev)] = pls
                kept.append(ev)
        seen = replace(sa, events=kept)
        shown_events[id(sa)] = seen.events
        readable.append(seen)
        ids = identities(seen, payloads_of)
        auth = ch.auth_method or auth_method(seen, payloads_of)
        stamps = [e.ts for e in evs]
        rows.append(IkeSaRow(
            version=sa.version, ispi=_hex(sa.ispi), rspi=_hex(sa.rspi),
            initiator=addr_text(sa.initiator[0]) if sa.initiator else None,
            responder=addr_text(sa.responder[0]) if sa.responder else None,
            mode=sa.mode,
            first_seen=min(stamps), last_seen=max(stamps),
            first_frame=first.frame, last_frame=last.frame, capture=tr.captures[first.capture],
            messages=len(evs),
            exchanges=dict(Counter(e.msg.exchange for e in evs)),
            enc=ch.enc, integ=ch.integ, prf=ch.prf, dh_group=ch.dh_group, auth_method=auth,
            lifetime=ch.lifetime, lifetime_kb=ch.lifetime_kb,
            vendor_ids=vendor_ids(seen), nat_detected=nat_detected(seen, ch),
            natt=any(e.marker for e in evs), notify_errors=notify_errors(seen),
            initiator_id=ids[0], responder_id=ids[1],
            key=info.key if info else None, decrypted=info.decrypted if info else 0,
            **ike_fields(lc, sa),
        ))
    return IkeView(rows, child_sa_algorithms(readable, payloads_of), lc, sas, payloads_of, events, dec,
                   list(tr.captures), shown, shown_events)


def exchange_rows(view: IkeView) -> list[ExchangeRow]:
    """One row per IKE message, in capture and frame order.

    A long capture has tens of thousands, most alike: what repeats from row to row is one
    object, however many rows show it -- the texts (an SPI in hex, an address) and the
    lists (a message's payload names unless decrypted ones follow them; no anomalies).
    The rows are frozen, and their lists are read, never changed (``to_dict`` copies)."""
    dec = view.decrypted
    captures = view.captures
    owner = {id(ev): sa for sa in view.sas if sa.version != 2 for ev in sa.events}  # (IKEv1: see below)
    hexes: dict[bytes, str] = {}  # SPI -> its hex text
    names: dict[tuple, list[str]] = {}  # a message's payload names -> the same as a list
    no_anomalies: list[str] = []
    rows = []
    for ev in view.events:
        m = ev.msg
        if m.version == 2:  # the I and R flags say it (as is_initiator and is_response read them)
            initiator, response = m.initiator_flag, m.response_flag
        else:
            sa = owner[id(ev)]
            initiator, response = is_initiator(sa, ev), is_response(sa, ev)
        src, dst = split(ev.addrs)
        d = dec.get(id(ev)) if dec else None
        if m.anomalies or (d is not None and d.anomalies):
            anomalies = [f"{a.kind}:{a.where}" + (f": {a.detail}" if a.detail else "") for a in m.anomalies]
            if d is not None:
                anomalies.extend(d.anomalies)
        else:
            anomalies = no_anomalies
        if d is not None and d.payloads:
            payloads = [*m.payload_names, *(p.name for p in d.payloads)]
        else:
            payloads = names.get(m.payload_names)
            if payloads is None:
                payloads = names[m.payload_names] = list(m.payload_names)
        ispi, rspi = hexes.get(m.ispi), hexes.get(m.rspi)
        if ispi is None:
            ispi = hexes[m.ispi] = m.ispi.hex()
        if rspi is None:
            rspi = hexes[m.rspi] = m.rspi.hex()
        # (positional, in ExchangeRow's field order: a third quicker than by keyword, and made
        # for every message, tens of thousands on a long capture)
        rows.append(ExchangeRow(
            captures[ev.capture], ev.frame, ev.ts,  # capture, frame, ts
            addr_text(src), addr_text(dst), ev.sport, ev.dport,  # src, dst, sport, dport
            m.version, m.exchange_type, m.exchange, ispi, rspi, m.mid,  # version .. mid
            initiator, response, m.encrypted, payloads, m.length,  # initiator .. length
            ev.marker, ev.fragments, anomalies,  # natt, ip_fragments, anomalies
            d is not None and d.status in ("ok", "fragment"),  # decrypted
            d.status if d is not None else ("no_key" if m.encrypted else None),  # decryption
        ))
    return rows


def sa_table(tr: Tracker, crypto: SaCrypto | None = None,
             negotiated: dict[int, tuple[str | None, str | None]] | None = None,
             lifecycle: Lifecycle | None = None) -> list[SaRow]:
    rows = []
    negotiated = negotiated or {}
    states = crypto.states if crypto is not None else {}
    for (proto, spi, addrs), s in tr.sas.items():
        src, dst = split(addrs)
        inner = s[SA_INNER] or {}
        st = states.get((proto, spi, addrs))
        key = st.key if st is not None else None
        if key is not None and (st.decrypted or not negotiated.get(spi)):
            enc, integ = (key_cipher_name(key) if proto == 50 else None), key.integ
        else:
            enc, integ = negotiated.get(spi, (None, None))
        rows.append(SaRow(
            protocol="esp" if proto == 50 else "ah", spi=f"0x{spi:08x}",
            src=addr_text(src), dst=addr_text(dst), udp_encap=s[SA_ENCAP] > 0,
            packets=s[SA_PACKETS], bytes=s[SA_BYTES],
            first_seen=s[SA_FIRST_TS], last_seen=s[SA_LAST_TS],
            first_frame=s[SA_FIRST_FRAME], last_frame=s[SA_LAST_FRAME],
            seq_first=s[SA_SEQ_FIRST], seq_last=s[SA_SEQ_LAST],
            capture=tr.captures[s[SA_FIRST_CAP]], last_capture=tr.captures[s[SA_LAST_CAP]],
            ip_fragments=s[SA_FRAGMENTS],
            next_headers={proto_name(nh): n for nh, n in sorted(inner.items())},
            enc=enc, integ=integ,
            decrypted=st.decrypted if st is not None else 0,
            integrity_failures=st.integrity_failures if st is not None else 0,
            key=key.fingerprint if key is not None else None,
            **sa_row_fields(sa_sequence(s), tr.captures),
            **sa_fields(lifecycle, (proto, spi, addrs)),
        ))
    rows.sort(key=lambda r: (r.capture, r.first_frame, r.protocol, r.spi))
    return rows


def key_cipher_name(key) -> str:
    """The key's cipher with its key length, as the IKE tables name it: aes-cbc-256."""
    from .crypto.registry import ENC

    algo = ENC.get(key.enc)
    if algo is None:
        return key.enc
    return cipher(key.enc, (len(key.enc_key) - algo.salt_len) * 8)


def tcp_state(bits: int) -> str:
    if not bits & TCP_FIRST_SYN:
        return "midstream"
    if bits & TCP_SYNACK_REV:
        return "accepted"
    if bits & (TCP_RST_REV | ICMP_ERROR_REV):
        return "rejected"
    return "unanswered"


def udp_state(bits: int, packets_rev: int) -> str:
    """UDP: accepted (the responder answered), rejected (an ICMP error came back), unanswered."""
    if bits & ICMP_ERROR_REV:
        return "rejected"
    return "accepted" if packets_rev else "unanswered"


def flow_table(tr: Tracker) -> list[FlowRow]:
    """One row per flow, sorted by capture, first frame, protocol, ends and ports.

    Column by column from the tracker's flow columns (:class:`~ipsecpcap.tracker.Flows`):
    an address's text made once per address, a TCP state once per set of bits, the order
    with numpy (ties of capture and first frame sorted in Python by the whole key), then
    the rows made positionally.  Made row by row from ``Flows.keys()`` (session 7), the 72k
    flows of the 5M benchmark capture took 0.38-0.41 s in-process, now 0.17-0.21 s; the
    313k of the encrypted one 1.54 s, now 1.20 s, most of it making the row objects
    (``tests/ipsecpcap/test_flow_table.py`` compares the two ways)."""
    fl = tr.flows
    n = len(fl)
    if not n:
        return []
    col = {name: fl.column(name) for name in fl.KEYS + fl.INTS + fl.FLOATS}
    proto = col["proto"].astype(np.int64)
    # the ends' text: IPv4 from the address pair, once per address; the other flows' own
    addr = col["addr"]
    uniq, inv = np.unique(np.concatenate((addr >> np.uint64(32), addr & np.uint64(0xFFFFFFFF))),
                          return_inverse=True)
    text = np.array([addr_text(a.to_bytes(4, "big")) for a in uniq.tolist()] or [""], dtype=object)
    src, dst = text[inv[:n]], text[inv[n:]]
    for i, addrs in fl.wide.items():
        s, d = split(addrs)
        src[i], dst[i] = addr_text(s), addr_text(d)
    names = np.empty(256, dtype=object)
    for p in np.unique(proto).tolist():
        names[p] = proto_name(p)
    pname = names[proto]
    # the state: TCP from its bits, UDP from them and whether the responder answered, else None
    bits, pk_rev = col["tcp"], col["pk_rev"]
    state = np.full(n, None, dtype=object)
    tcp = proto == 6
    if tcp.any():
        ub, binv = np.unique(bits[tcp], return_inverse=True)
        state[tcp] = np.array([tcp_state(b) for b in ub.tolist()], dtype=object)[binv]
    udp = proto == 17
    if udp.any():  # (once per set of bits and whether anything came back)
        uk, kinv = np.unique(bits[udp] << 1 | (pk_rev[udp] != 0), return_inverse=True)
        state[udp] = np.array([udp_state(k >> 1, k & 1) for k in uk.tolist()], dtype=object)[kinv]
    captures = tr.captures
    cap_names = np.array(captures, dtype=object)[col["first_cap"]]
    by_name = {c: r for r, c in enumerate(sorted(set(captures)))}
    cap_rank = np.array([by_name[c] for c in captures], dtype=np.int64)[col["first_cap"]]
    first_frame = col["first_frame"]
    order = np.lexsort((first_frame, cap_rank))
    # runs of flows that began in one frame of one capture name: by the rest of the key
    r, f = cap_rank[order], first_frame[order]
    starts = np.flatnonzero(np.concatenate(([True], (r[1:] != r[:-1]) | (f[1:] != f[:-1]))))
    ends = np.append(starts[1:], n)
    tied = ends - starts > 1
    if tied.any():
        order = order.tolist()
        sport, dport = col["sport"], col["dport"]

        def key(i):
            return pname[i], src[i], int(sport[i]), dst[i], int(dport[i])
        for s, e in zip(starts[tied].tolist(), ends[tied].tolist()):
            order[s:e] = sorted(order[s:e], key=key)
        order = np.array(order, dtype=np.int64)
    pk_fwd, by_fwd, by_rev = col["pk_fwd"], col["by_fwd"], col["by_rev"]
    columns = (pname, src, col["sport"], dst, col["dport"], pk_fwd + pk_rev, by_fwd + by_rev, pk_fwd, pk_rev,
               by_fwd, by_rev, col["first_ts"], col["last_ts"], first_frame, col["last_frame"], state,
               np.array(fl.protected, dtype=object), cap_names)
    # positionally, in FlowRow's field order
    return list(map(FlowRow, *(c[order].tolist() for c in columns)))
