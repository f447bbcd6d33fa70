"""Every frame of every fixture capture, ours against Wireshark's dissection.

The comparison is the product's: :func:`ipsecpcap.crosscheck.crosscheck`
(``ipsecpcap crosscheck``), which compares per frame the esp / ah / isakmp /
udpencap classification, the ESP SPI and sequence number, every AH SPI and
sequence number, the IKE header (SPIs, major version, exchange type,
message ID) and payload chain, IP reassembly and what an ICMP error's quote
carried.  Its documented normalisations (``ipsecpcap/tsharkview.py``) are the
only ones: an ICMP error's quote is compared with what our decoder says the
quote carried (the frames where tshark dissects a quote as IPsec are pinned in
``ICMP_QUOTES`` so the rule cannot hide anything else), and an IKEv1 message
with the encryption flag set is one ``encrypted`` pseudo-payload on our side
and no payload on tshark's.

No capture may have an unexplained disagreement, and the explained ones are
pinned here, frame by frame, with the explanation the cross-check gave
(``EXPLAINED``): an explanation that starts to fire elsewhere, or stops
firing, fails the test.  ``tests/ipsecpcap/test_crosscheck.py`` proves the
engine each explanation believes.
"""
from __future__ import annotations

import pytest

from ipsecpcap.crosscheck import CrossCheck, check_capture

try:
    from reference import every_capture
    from reference.tshark import SKIP_REASON, tshark_available
except ImportError:  # pragma: no cover - depends on how pytest was started
    from tests.reference import every_capture
    from tests.reference.tshark import SKIP_REASON, tshark_available

pytestmark = pytest.mark.skipif(not tshark_available(), reason=SKIP_REASON)

CAPTURES = every_capture()
QUOTED_PROTOCOLS = ("esp", "ah", "isakmp")

# ---------------------------------------------------------------------------
# ICMP errors whose quote tshark dissects as IPsec (frame.protocols has esp,
# ah or isakmp after icmp/icmpv6).  For us such a frame is an ICMP flow; what
# the quote carried is FrameInfo.quoted (field icmp.quoted), not protocols.
ICMP_QUOTES: dict[str, frozenset[int]] = {
    # ICMPv6 Parameter Problem (type 4, code 1: unrecognised Next Header)
    # quoting the flood's own IPv6+AH+ICMPv6 echo requests
    # (ipv6:icmpv6:ipv6:ah:icmpv6).
    "public/suricata-verify/ipv6-dos-with-ext-headers-5/denial6-5.pcap": frozenset(
        {15, 16, 17, 19, 23, 24, 4125, 7903, 12001, 15792, 19574, 23731, 27511, 31618, 35429}),
    # ICMPv6 Parameter Problem (type 4, code 1) quoting an echo request
    # with a zero-length AH.
    "public/zeek/ipv6_zero_len_ah.pcap": frozenset({6}),
    # ICMP port unreachable (type 3, code 3) answering each IKE_SA_INIT
    # request sent to a host where no IKE daemon listens.
    "strongswan/ikev2-unanswered/capture.pcap": frozenset({4, 6, 8, 10}),
}

# ---------------------------------------------------------------------------
# The explained disagreements: capture -> {(frame, field): explanation id}.
EXPLAINED: dict[str, dict[tuple[int, str], str]] = {
    # tcpdump's fuzzed "-oobr" inputs: one IKE datagram each, cut by the snap
    # length, whose ISAKMP Length field is far larger than the datagram.
    "public/tcpdump/ikev1_id_ipv6_addr_subnet-oobr.pcap": {(1, "ike.payloads"): "isakmp-length-beyond-datagram"},
    "public/tcpdump/isakmp-ikev1_n_print-oobr.pcap": {(1, "ike.payloads"): "isakmp-length-beyond-datagram",
                                                       (3, "ike.payloads"): "isakmp-length-beyond-datagram"},
    "public/tcpdump/isakmp-various-oobr.pcap": {(1, "ike.payloads"): "isakmp-length-beyond-datagram"},
    "public/tcpdump/isakmpv1-attr-oobr.pcap": {(1, "ike.payloads"): "isakmp-length-beyond-datagram"},
    # major version 11 (a fuzzed header)
    "public/tcpdump/isakmp-delete-segfault.pcap": {(1, "ike.exchange"): "unknown-major-version"},
    # Main Mode messages 3/4 with two payloads of type 15 (draft NAT-D)
    "public/tcpdump/ISAKMP_sa_setup.pcap": {(3, "ike.payloads"): "draft-nat-d-type-15",
                                            (4, "ike.payloads"): "draft-nat-d-type-15"},
    # an SA followed by a VID whose Payload Length is 3
    "public/zeek-spicy-ipsec/ipsec-ikev1-payload-bad-length.pcap": {
        (1, "ike.payloads"): "payload-length-below-header"},
}


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda c: c.name)
def test_frames_agree_with_tshark(capture, tshark_frames, tshark_stats):
    ref = tshark_frames(capture.path)  # prefetched in parallel by the conftest
    result = CrossCheck("tshark")
    check_capture(result, capture.path, capture.name)

    for field, s in result.stats.items():
        t = tshark_stats.setdefault(field, {"compared": 0, "agree": 0, "explained": 0, "differ": 0})
        for k in t:
            t[k] += s[k]
    tshark_stats["_frames"] = tshark_stats.get("_frames", 0) + result.frames
    tshark_stats["_captures"] = tshark_stats.get("_captures", 0) + 1

    problems = [f"{capture.name} frame {d.frame} {d.field}: ours {d.fast!r}, tshark {d.tshark!r} {d.reason}"
                for d in result.unexplained]
    got = {(d.frame, d.field): d.explanation for d in result.explained}
    expected = EXPLAINED.get(capture.name, {})
    if got != expected:
        problems.append(f"{capture.name}: explained disagreements {sorted(got.items())}, "
                        f"EXPLAINED lists {sorted(expected.items())}")
    quoted = {n for n, t in ref.items() if any(p in t.quoted_protocols for p in QUOTED_PROTOCOLS)}
    expected_quotes = ICMP_QUOTES.get(capture.name, frozenset())
    if quoted != expected_quotes:
        problems.append(f"{capture.name}: frames whose ICMP quote tshark dissects as IPsec: "
                        f"{sorted(quoted)}, ICMP_QUOTES lists {sorted(expected_quotes)}")
    if problems:
        shown = problems[:60]
        more = f"\n... and {len(problems) - 60} more" if len(problems) > 60 else ""
        pytest.fail(f"{len(problems)} disagreement(s) with tshark:\n" + "\n".join(shown) + more, pytrace=False)


def test_every_field_was_compared(tshark_stats, request):
    """The comparison is not vacuous: over the whole fixture set every field was
    compared many times (only when the per-capture tests ran in this session)."""
    if tshark_stats.get("_captures", 0) < len(CAPTURES):
        pytest.skip("runs after the whole per-capture comparison")
    for field, least in (("esp", 40000), ("esp.spi", 3500), ("esp.seq", 3500), ("ah.spi", 35000),
                         ("ike.ispi", 1200), ("ike.payloads", 1100), ("ike.mid", 1200), ("ip.fragments", 15),
                         ("icmp.quoted", 20)):
        assert tshark_stats[field]["compared"] >= least, (field, tshark_stats[field])


def test_the_command_over_every_capture_exits_0(tshark_cache):
    """``ipsecpcap crosscheck`` over every capture in fixtures/ at once: exit 0,
    and the disagreements it lists are the explained ones pinned above."""
    import json

    from click.testing import CliRunner

    from ipsecpcap.cli import main

    res = CliRunner().invoke(main, ["crosscheck", "--format", "json", *(str(c.path) for c in CAPTURES)],
                             catch_exceptions=False)
    assert res.exit_code == 0, res.stderr[-2000:]
    rows = json.loads(res.stdout)
    assert all(r["explained"] and r["believed"] == "fast" for r in rows)
    got = sorted((r["capture"], r["frame"], r["field"], r["explanation"]) for r in rows)
    expected = sorted((name.rsplit("/", 1)[1], frame, field, why)
                      for name, pinned in EXPLAINED.items() for (frame, field), why in pinned.items())
    assert got == expected
    assert f"in {len(CAPTURES)} captures" in res.stderr and ", 0 unexplained" in res.stderr
