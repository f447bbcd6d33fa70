"""Build the table rows (``ipsecpcap.records``) from a (merged) tracker.

Rows are sorted deterministically: exchanges by capture and frame, IKE SAs
by first appearance, SAs and flows by first frame.
"""
from __future__ import annotations

from collections import Counter

from .ikesa import (addr_text, chosen_proposal, group_ike_sas, is_initiator, is_response, nat_detected,
                    notify_errors, split, vendor_ids)
from .records import ExchangeRow, FlowRow, IkeSaRow, SaRow
from .tracker import (ICMP_ERROR_REV, FL_BY_FWD, FL_BY_REV, FL_FIRST_CAP, FL_FIRST_FRAME, FL_FIRST_TS, FL_LAST_FRAME,
                      FL_LAST_TS, FL_PK_FWD, FL_PK_REV, FL_PROTECTED, FL_TCP, SA_BYTES, SA_ENCAP,
                      SA_FIRST_CAP, SA_FIRST_FRAME, SA_FIRST_TS, SA_FRAGMENTS, SA_INNER, SA_LAST_CAP,
                      SA_LAST_FRAME, SA_LAST_TS, SA_PACKETS, SA_SEQ_FIRST, SA_SEQ_LAST, TCP_FIRST_SYN,
                      TCP_RST_REV, TCP_SYNACK_REV, Tracker)

PROTO_NAMES = {1: "icmp", 2: "igmp", 4: "ipip", 6: "tcp", 17: "udp", 41: "ipv6", 47: "gre", 50: "esp",
               51: "ah", 58: "icmpv6", 59: "none", 89: "ospf", 103: "pim", 112: "vrrp", 132: "sctp"}


def proto_name(n: int) -> str:
    return PROTO_NAMES.get(n, str(n))


def _hex(spi: bytes) -> str:
    return spi.hex()


def _ordered_events(tr: Tracker):
    return sorted(tr.ike_events, key=lambda e: (e.capture, e.frame))


def ike_tables(tr: Tracker) -> tuple[list[ExchangeRow], list[IkeSaRow]]:
    events = _ordered_events(tr)
    sas = group_ike_sas(events)
    owner = {}
    for sa in sas:
        for ev in sa.events:
            owner[id(ev)] = sa
    exchanges = []
    for ev in events:
        m = ev.msg
        sa = owner[id(ev)]
        src, dst = split(ev.addrs)
        exchanges.append(ExchangeRow(
            capture=tr.captures[ev.capture], frame=ev.frame, ts=ev.ts,
            src=addr_text(src), dst=addr_text(dst), sport=ev.sport, dport=ev.dport,
            version=m.version, exchange_type=m.exchange_type, exchange=m.exchange,
            ispi=_hex(m.ispi), rspi=_hex(m.rspi), mid=m.mid,
            initiator=is_initiator(sa, ev), response=is_response(sa, ev), encrypted=m.encrypted,
            payloads=m.payload_names, length=m.length, natt=ev.marker, ip_fragments=ev.fragments,
            anomalies=[f"{a.kind}:{a.where}" + (f": {a.detail}" if a.detail else "") for a in m.anomalies],
        ))
    rows = []
    for sa in sas:
        ch = chosen_proposal(sa)
        first, last = sa.events[0], sa.events[-1]
        rows.append(IkeSaRow(
            version=sa.version, ispi=_hex(sa.ispi), rspi=_hex(sa.rspi),
            initiator=addr_text(sa.initiator[0]) if sa.initiator else None,
            responder=addr_text(sa.responder[0]) if sa.responder else None,
            mode=sa.mode,
            first_seen=min(e.ts for e in sa.events), last_seen=max(e.ts for e in sa.events),
            first_frame=first.frame, last_frame=last.frame, capture=tr.captures[first.capture],
            messages=len(sa.events),
            exchanges=dict(Counter(e.msg.exchange for e in sa.events)),
            enc=ch.enc, integ=ch.integ, prf=ch.prf, dh_group=ch.dh_group, auth_method=ch.auth_method,
            lifetime=ch.lifetime, lifetime_kb=ch.lifetime_kb,
            vendor_ids=vendor_ids(sa), nat_detected=nat_detected(sa, ch),
            natt=any(e.marker for e in sa.events), notify_errors=notify_errors(sa),
        ))
    return exchanges, rows


def sa_table(tr: Tracker) -> list[SaRow]:
    rows = []
    for (proto, spi, addrs), s in tr.sas.items():
        src, dst = split(addrs)
        inner = s[SA_INNER] or {}
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
        ))
    rows.sort(key=lambda r: (r.capture, r.first_frame, r.protocol, r.spi))
    return rows


def tcp_state(bits: int) -> str:
    if not bits & TCP_FIRST_SYN:
        return "midstream"
    if bits & TCP_SYNACK_REV:
        return "accepted"
    if bits & (TCP_RST_REV | ICMP_ERROR_REV):
        return "rejected"
    return "unanswered"


def flow_table(tr: Tracker) -> list[FlowRow]:
    rows = []
    for (proto, addrs, sport, dport), f in tr.flows.items():
        src, dst = split(addrs)
        rows.append(FlowRow(
            proto=proto_name(proto), src=addr_text(src), sport=sport, dst=addr_text(dst), dport=dport,
            packets=f[FL_PK_FWD] + f[FL_PK_REV], bytes=f[FL_BY_FWD] + f[FL_BY_REV],
            packets_fwd=f[FL_PK_FWD], packets_rev=f[FL_PK_REV],
            bytes_fwd=f[FL_BY_FWD], bytes_rev=f[FL_BY_REV],
            first_seen=f[FL_FIRST_TS], last_seen=f[FL_LAST_TS],
            first_frame=f[FL_FIRST_FRAME], last_frame=f[FL_LAST_FRAME],
            state=tcp_state(f[FL_TCP]) if proto == 6 else None,
            protected_by=f[FL_PROTECTED], capture=tr.captures[f[FL_FIRST_CAP]],
        ))
    rows.sort(key=lambda r: (r.capture, r.first_frame, r.proto, r.src, r.sport, r.dst, r.dport))
    return rows
