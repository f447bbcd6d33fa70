"""What the tracker keeps of each IKE message and the exchanges table built from it: the
values shared between messages and rows must read exactly as the full dissector reads each
message's own bytes."""
from pathlib import Path

import pytest

from ipsecpcap.analysis import analyze_capture
from ipsecpcap.dissectors.ike import parse_ike
from ipsecpcap.ikesa import addr_text
from ipsecpcap.tables import ike_tables
from ipsecpcap.tracker import Tracker

FIX = Path(__file__).resolve().parents[2] / "fixtures"
SS = FIX / "strongswan"
CAPTURES = [SS / "ikev1-aggressive-psk" / "capture.pcap", SS / "ikev1-main-quick" / "capture.pcap",
            SS / "ikev2-cbc-rekey" / "capture.pcap", SS / "ikev2-natt" / "capture.pcap",
            FIX / "public" / "arkime" / "IKEv2.pcap", FIX / "public" / "tcpdump" / "isakmp4500.pcap",
            FIX / "public" / "nDPI" / "ipsec_isakmp_esp.pcap"]
A, B = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])


def test_bytes_kept_only_where_read():
    """Without IKE keys a message's bytes are kept only for psk-hashes (IKEv1 Aggressive Mode
    in clear); with them (keep_ike_ciphertext), every message's."""
    for cap in CAPTURES[:3]:
        every = analyze_capture(cap).ike_events
        some = analyze_capture(cap, keep_ike_ciphertext=False).ike_events
        assert len(every) == len(some) > 3 and all(ev.raw for ev in every)
        for full, ev in zip(every, some):
            m = parse_ike(full.raw)
            wanted = m.version == 1 and m.exchange_type == 4 and not m.encrypted
            assert ev.raw == (full.raw if wanted else b""), (cap.name, ev.frame)
            assert ev.msg == full.msg
    kept = [ev for ev in analyze_capture(CAPTURES[0], keep_ike_ciphertext=False).ike_events if ev.raw]
    assert len(kept) >= 2  # the capture has Aggressive Mode messages in clear


def test_sa_proposals_shared_between_messages():
    """The same offer in two messages is one tuple in memory, equal to what each message says."""
    raw = next(ev.raw for ev in analyze_capture(CAPTURES[2]).ike_events
               if any(p.name == "SA" for p in parse_ike(ev.raw).payloads))
    tr = Tracker("x")
    for frame in (1, 2):
        tr.ike(frame, float(frame), A + B, 500, 500, parse_ike(raw), False, 0, raw)
    first, second = ([p for p in ev.msg.payloads if p.name == "SA"][0] for ev in tr.ike_events)
    assert first.fields["proposals"] is second.fields["proposals"]
    fresh = [p for p in parse_ike(raw).payloads if p.name == "SA"][0]
    assert first.fields == fresh.fields and second.fields == fresh.fields


@pytest.mark.parametrize("cap", CAPTURES, ids=lambda p: p.parent.name + "/" + p.name)
def test_exchange_rows_read_as_the_full_dissector(cap):
    """Each row, field by field, against the full dissection of the message's own bytes and
    what the capture says of its packet (the rows share lists and strings, and are made
    with positional arguments: a field out of place shows here)."""
    tr = analyze_capture(cap)
    rows = ike_tables(tr).exchanges
    evs = {ev.frame: ev for ev in tr.ike_events}
    assert [r.frame for r in rows] == sorted(evs) and len(rows) == len(tr.ike_events)
    for r in rows:
        ev = evs[r.frame]
        m = parse_ike(ev.raw)
        h = len(ev.addrs) // 2
        assert r.payloads == [p.name for p in m.payloads], r.frame
        assert r.anomalies == [f"{a.kind}:{a.where}" + (f": {a.detail}" if a.detail else "") for a in m.anomalies]
        assert (r.capture, r.ts, r.src, r.dst, r.sport, r.dport, r.natt, r.ip_fragments) == (
            cap.name, ev.ts, addr_text(ev.addrs[:h]), addr_text(ev.addrs[h:]), ev.sport, ev.dport, ev.marker,
            ev.fragments)
        assert (r.version, r.exchange_type, r.exchange, r.ispi, r.rspi, r.mid, r.length, r.encrypted) == (
            m.version, m.exchange_type, m.exchange, m.ispi.hex(), m.rspi.hex(), m.mid, m.length, m.encrypted)
        assert (r.decrypted, r.decryption) == (False, "no_key" if m.encrypted else None)
        if m.version == 2:
            assert (r.initiator, r.response) == (m.initiator_flag, m.response_flag)
        else:
            assert isinstance(r.initiator, bool) and isinstance(r.response, bool)


def test_messages_out_of_order_are_sorted():
    """Messages that came out of capture order (captures merged in another order) are listed
    in order; in order, the tracker's own list is used."""
    raws = [ev.raw for ev in analyze_capture(CAPTURES[2]).ike_events[:3]]
    tr = Tracker("x")
    for frame, raw in zip((7, 3, 5), raws):
        tr.ike(frame, float(frame), A + B, 500, 500, parse_ike(raw), False, 0, raw)
    view = ike_tables(tr)
    assert [r.frame for r in view.exchanges] == [3, 5, 7]
    assert [r.ispi for r in view.exchanges] == [parse_ike(raws[i]).ispi.hex() for i in (1, 2, 0)]
    tr = analyze_capture(CAPTURES[2])
    assert ike_tables(tr).events is tr.ike_events


def test_messages_without_a_key_read_as_no_key():
    """With keys for one IKE SA's capture and none for another's, the other's encrypted
    messages have no decryption result kept, and read as no_key; the keyed ones decrypt."""
    from ipsecpcap.analysis import analyze

    keyed, other = SS / "ikev2-cbc-rekey", FIX / "public" / "arkime" / "IKEv2.pcap"
    a = analyze([keyed / "capture.pcap", other], keys=[keyed])
    view = a.ike_view
    rows = {(r.capture, r.frame): r for r in a.exchanges}
    for ev in view.events:
        r = rows[(view.captures[ev.capture], ev.frame)]
        if view.captures[ev.capture] == other.name:
            assert id(ev) not in view.decrypted
            assert (r.decrypted, r.decryption) == (False, "no_key" if ev.msg.encrypted else None)
        elif ev.msg.encrypted:
            assert (r.decrypted, r.decryption) == (True, "ok")
    assert sum(r.decryption == "ok" for r in rows.values()) > 5
    assert sum(r.decryption == "no_key" for r in rows.values()) > 5
