"""The tracker as a state machine, fed with events (no capture needed)."""
from ipsecpcap.tables import flow_table, sa_table
from ipsecpcap.tracker import Tracker

A, B = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
SYN, SYNACK, ACK, RST = 0x02, 0x12, 0x10, 0x14


def tcp(tr, frame, src_first, flags, length=60):
    addrs, sp, dp = (A + B, 40000, 80) if src_first else (B + A, 80, 40000)
    tr.flow(frame, float(frame), 6, addrs, sp, dp, length, flags, None)


def state_of(tr):
    (row,) = flow_table(tr)
    return row


def test_tcp_accepted():
    tr = Tracker("t")
    tcp(tr, 1, True, SYN)
    tcp(tr, 2, False, SYNACK)
    tcp(tr, 3, True, ACK, 100)
    r = state_of(tr)
    assert (r.state, r.src, r.dst, r.packets_fwd, r.packets_rev, r.bytes) == ("accepted", "10.0.0.1", "10.0.0.2", 2, 1, 220)


def test_tcp_rejected_unanswered_midstream():
    tr = Tracker("t")
    tcp(tr, 1, True, SYN)
    tcp(tr, 2, False, RST)
    assert state_of(tr).state == "rejected"
    tr = Tracker("t")
    tcp(tr, 1, True, SYN)
    tcp(tr, 2, True, SYN)
    assert state_of(tr).state == "unanswered"
    tr = Tracker("t")
    tcp(tr, 1, False, ACK)
    tcp(tr, 2, True, ACK)
    r = state_of(tr)
    assert r.state == "midstream" and r.src == "10.0.0.2"


def test_synack_first_makes_the_receiver_the_initiator():
    tr = Tracker("t")
    tcp(tr, 1, False, SYNACK)
    r = state_of(tr)
    assert (r.src, r.sport, r.state) == ("10.0.0.1", 40000, "midstream")


def test_esp_aggregation_and_out_of_order_timestamps():
    tr = Tracker("t")
    tr.esp(1, 10.0, A + B, 0x1234, 1, 100, False, 0)
    tr.esp(2, 12.0, A + B, 0x1234, 3, 120, True, 0)
    tr.esp(3, 9.0, A + B, 0x1234, 0, 80, False, 0)  # an earlier timestamp arrives late
    (r,) = sa_table(tr)
    assert (r.spi, r.packets, r.bytes, r.udp_encap) == ("0x00001234", 3, 300, True)
    assert (r.first_seen, r.first_frame, r.seq_first, r.last_seen, r.last_frame, r.seq_last) == (9.0, 3, 0, 12.0, 2, 3)


def test_merge_equals_one_pass():
    events = [(1, True, SYN), (2, False, SYNACK), (3, True, ACK), (4, False, ACK), (5, True, RST)]
    whole = Tracker("c")
    for f, d, fl in events:
        tcp(whole, f, d, fl)
    for i in range(len(events) + 1):
        a, b = Tracker("c"), Tracker("c")
        for f, d, fl in events[:i]:
            tcp(a, f, d, fl)
        for f, d, fl in events[i:]:
            tcp(b, f, d, fl)
        merged = a.merge(b)
        ra, rw = state_of(merged), state_of(whole)
        assert (ra.state, ra.src, ra.packets_fwd, ra.packets_rev, ra.last_frame) == \
               (rw.state, rw.src, rw.packets_fwd, rw.packets_rev, rw.last_frame), i


def test_merge_sas_across_captures():
    a, b = Tracker("one.pcap"), Tracker("two.pcap")
    a.esp(7, 1.0, A + B, 5, 1, 100, False, 0)
    b.esp(3, 2.0, A + B, 5, 2, 100, False, 0)
    b.ah(4, 2.5, B + A, 6, 1, 80, 50)
    merged = a.merge(b)
    esp, ah = sa_table(merged)
    assert (esp.packets, esp.first_frame, esp.capture, esp.last_frame, esp.last_capture) == (2, 7, "one.pcap", 3, "two.pcap")
    assert ah.protocol == "ah" and ah.next_headers == {"esp": 1} and ah.capture == "two.pcap"



def test_merge_flows_across_captures():
    """Flows in columns: a flow seen in both captures (from the other end in the second) keeps
    its first capture, frame and initiator and takes the second's last; one seen only in the
    second is its own, with what protected it; the merged tracker's flows are a copy."""
    a, b = Tracker("one.pcap"), Tracker("two.pcap")
    a.flow(5, 1.0, 17, A + B, 5000, 53, 70, 0, None)
    b.flow(2, 3.0, 17, B + A, 53, 5000, 90, 0, None)  # the answer, in the second capture
    b.flow(4, 4.0, 6, B + A, 443, 41000, 60, SYN, "0x00000007")
    merged = a.merge(b)
    udp, tcp_row = flow_table(merged)
    assert (udp.src, udp.sport, udp.packets_fwd, udp.packets_rev, udp.bytes_fwd, udp.bytes_rev, udp.state) == \
           ("10.0.0.1", 5000, 1, 1, 70, 90, "accepted")
    assert (udp.capture, udp.first_frame, udp.first_seen, udp.last_frame, udp.last_seen) == \
           ("one.pcap", 5, 1.0, 2, 3.0)
    i, forward = merged.flows.find(17, A + B, 5000, 53)
    assert forward
    assert merged.flows.last_cap[i] == 1  # the second capture
    assert (tcp_row.capture, tcp_row.src, tcp_row.state, tcp_row.protected_by) == \
           ("two.pcap", "10.0.0.2", "unanswered", "0x00000007")
    assert len(b.flows) == 2 and b.flows.pk_fwd[0] == 1  # the later tracker is left as it was

def _ikev2_sk_message(mid: int) -> bytes:
    """An IKEv2 INFORMATIONAL request: the 28-byte header (RFC 7296 3.1) and one SK payload."""
    import struct

    body = struct.pack("!BBH", 0, 0, 4 + 32) + bytes(32)  # SK: generic header + IV, data, ICV
    return struct.pack("!8s8sBBBBII", b"\x11" * 8, b"\x22" * 8, 46, 0x20, 37, 0x08, mid, 28 + len(body)) + body


def test_ike_messages_kept_small():
    """The tracker keeps an IkeSummary per message: the SK payload left out, the bytes of an
    encrypted message only while IKE keys may need them, one object per SPI and address pair."""
    from ipsecpcap.dissectors.ike import parse_ike

    for keep in (True, False):
        tr = Tracker("x", keep_ike_ciphertext=keep)
        for mid in (1, 2):
            raw = _ikev2_sk_message(mid)
            tr.ike(mid, float(mid), bytes(A + B), 500, 500, parse_ike(raw), False, 0, raw)
        first, second = tr.ike_events
        assert first.msg.payload_names == ("SK",) and first.msg.payloads == () and first.msg.encrypted
        assert first.msg.exchange == "INFORMATIONAL" and first.msg.initiator_flag and not first.msg.response_flag
        assert (first.raw == _ikev2_sk_message(1)) if keep else first.raw == b""
        assert first.msg.ispi is second.msg.ispi and first.addrs is second.addrs


def test_flows_found_from_either_end():
    """A flow is found from the packets of both ends, and only of its own: IPv4 through the
    table of two ends (also a flow whose two ends are one, and protocols without ports),
    IPv6 through the dict; each row's key is the initiator's end first."""
    from ipsecpcap.tracker import Flows

    fl = Flows()
    C, D = bytes(range(16)), bytes(range(16, 32))
    keys = [(17, A + B, 5000, 53), (6, B + A, 443, 41000), (17, A + A, 500, 500), (1, A + B, 8, 0),
            (17, C + D, 5000, 53), (58, D + C, 128, 0)]
    for n, k in enumerate(keys):
        assert fl.find(*k) is None
        assert fl.add(k, 1, 0, 100, 0, float(n), n + 1, 0, None) == n
    for n, (proto, addrs, sport, dport) in enumerate(keys):
        assert fl.find(proto, addrs, sport, dport) == (n, True)
        h = len(addrs) // 2
        back = (proto, addrs[h:] + addrs[:h], dport, sport)
        assert fl.find(*back) == (n, back == keys[n])  # the same ends from the other side
        assert fl.key(n) == keys[n]
    assert list(fl.keys()) == keys
    for other in ((17, A + B, 5001, 53), (6, A + B, 5000, 53), (17, B + B, 5000, 53), (17, C + C, 5000, 53)):
        assert fl.find(*other) is None


def test_flows_found_lately_are_kept_but_misses_are_not(monkeypatch):
    """The dict of flows found lately gives the table's answers, from either end, also after it
    fills and starts again; a flow not found yet is found once it is added."""
    from ipsecpcap.tracker import Flows

    monkeypatch.setattr(Flows, "RECENT", 3)
    fl = Flows()
    keys = [(17, A + B, 5000 + n, 53) for n in range(8)]
    for n, k in enumerate(keys):
        assert fl.find(*k) is None  # a miss: not kept
        assert fl.add(k, 1, 0, 10, 0, 0.0, n, 0, None) == n
        assert fl.find(*k) == (n, True)
    for _ in range(2):
        for n, (proto, addrs, sport, dport) in enumerate(keys):
            assert fl.find(proto, addrs, sport, dport) == (n, True)
            assert fl.find(proto, B + A, dport, sport) == (n, False)
            assert len(fl._recent) <= 3
