"""Every frame of every fixture capture, ours against Wireshark's dissection.

For each frame, :func:`ipsecpcap.frames.iter_frames` (the fast path) and
tshark (``tests/reference/tshark.py``) must agree on:

* which of esp / ah / isakmp / udpencap the frame carries,
* the ESP SPI and sequence number, every AH SPI and sequence number,
* the IKE header: initiator and responder SPI, major version, exchange type,
  message ID, and the message's payload chain (tshark's payload type numbers,
  named with our own IANA tables for the message's major version),
* whether the frame is an IP fragment that did not complete a datagram, and,
  for the frame that did, how many fragments it took,
* what an ICMP error's quoted datagram carried (esp/ah/isakmp), when
  ``FrameInfo`` reports it (``quoted``).

tshark's view is normalised in two documented ways only (the reference
module's docstring has the details): an ICMP error's quoted datagram is
compared with ``FrameInfo.quoted``, not with the frame's own protocols (the
frames where that happens are listed in ``ICMP_QUOTES`` so the rule cannot
hide anything else), and an IKEv1 message with the encryption flag set, whose
payloads neither side can see, is one ``encrypted`` pseudo-payload on our
side and no payload on tshark's.

Everything else that differs must be listed in ``KNOWN_DIFFERENCES`` with a
reason; a listed difference that no longer occurs fails the test too, so the
list stays exact.
"""
from __future__ import annotations

import pytest

from ipsecpcap.dissectors import iana
from ipsecpcap.frames import FrameInfo, iter_frames

try:
    from reference import all_captures
    from reference.tshark import SKIP_REASON, TsharkFrame, tshark_available
except ImportError:  # pragma: no cover - depends on how pytest was started
    from tests.reference import all_captures
    from tests.reference.tshark import SKIP_REASON, TsharkFrame, tshark_available

pytestmark = pytest.mark.skipif(not tshark_available(), reason=SKIP_REASON)

CAPTURES = all_captures()
QUOTED_PROTOCOLS = ("esp", "ah", "isakmp")

# ---------------------------------------------------------------------------
# ICMP errors whose quote tshark dissects as IPsec (frame.protocols has esp,
# ah or isakmp after icmp/icmpv6).  For us such a frame is an ICMP flow; what
# the quote carried is FrameInfo.quoted (field icmp.quoted), not protocols.
# The comparison uses tshark's outer layers for these frames; this list pins
# down where that happens.
ICMP_QUOTES: dict[str, frozenset[int]] = {
    # ICMPv6 Parameter Problem (type 4, code 1: unrecognised Next Header)
    # quoting the flood's own IPv6+AH+ICMPv6 echo requests
    # (ipv6:icmpv6:ipv6:ah:icmpv6).
    "public/suricata-verify/ipv6-dos-with-ext-headers-5/denial6-5.pcap": frozenset(
        {15, 16, 17, 19, 23, 24, 4125, 7903, 12001, 15792, 19574, 23731, 27511, 31618, 35429}),
    # ICMPv6 Parameter Problem (type 4, code 1) quoting an echo request
    # with a zero-length AH.
    "public/zeek/ipv6_zero_len_ah.pcap": frozenset({6}),
    # ICMP port unreachable (type 3, code 3) from sun, where no charon
    # listens, quoting each IKE_SA_INIT request (ip:icmp:ip:udp:isakmp).
    "strongswan/ikev2-unanswered/capture.pcap": frozenset({4, 6, 8, 10}),
}

# ---------------------------------------------------------------------------
# Justified differences: capture -> frame -> field -> why.  Keep each entry
# to the exact frame and field; the test fails if an entry stops applying.
# tcpdump's fuzzed "-oobr" inputs: one IKE datagram each, cut by the snap
# length (75-107 of 262144 bytes captured), whose ISAKMP header Length field
# is far larger than the datagram (or lies beyond the captured bytes).  tshark
# stops after the header ("Length: (bogus, ... too large)") and lists no
# payload; ours walks the payload chain through the bytes captured and records
# the message as truncated.  The header fields agree.
BOGUS_LENGTH = "ISAKMP Length beyond the captured datagram: tshark stops after the header, ours walks what was captured"


KNOWN_DIFFERENCES: dict[str, dict[int, dict[str, str]]] = {
    "public/tcpdump/ikev1_id_ipv6_addr_subnet-oobr.pcap": {1: {"ike.payloads": BOGUS_LENGTH}},
    "public/tcpdump/isakmp-ikev1_n_print-oobr.pcap": {1: {"ike.payloads": BOGUS_LENGTH},
                                                       3: {"ike.payloads": BOGUS_LENGTH}},
    "public/tcpdump/isakmp-various-oobr.pcap": {1: {"ike.payloads": BOGUS_LENGTH}},
    "public/tcpdump/isakmpv1-attr-oobr.pcap": {1: {"ike.payloads": BOGUS_LENGTH}},
    "public/tcpdump/isakmp-delete-segfault.pcap": {
        # Major version 11 (0xbe..., a fuzzed header): tshark dissects the
        # header of an unknown major version without an exchange type field;
        # ours reports the byte at offset 18 (190) as the header has it.
        1: {"ike.exchange": "unknown major version 11: tshark writes no isakmp.exchangetype"},
    },
    "public/tcpdump/ISAKMP_sa_setup.pcap": {
        # Main Mode message 3/4 (KE, NONCE, 4 VIDs, then two payloads of type
        # 15, each 24 bytes = generic header + a 20-byte SHA-1 hash).  In Main
        # and Aggressive Mode 15 is the NAT-D of draft-ietf-ipsec-nat-t-ike-04..08
        # (RFC 3547's SAK only exists in GDOI's GROUPKEY exchanges).  tshark
        # 4.0 reads it as SA KEK, throws a Malformed Packet exception inside
        # it and stops the chain: it lists one SAK, we list two NAT-D.
        3: {"ike.payloads": "type 15 in Main Mode is draft NAT-D; tshark takes it for SAK and stops"},
        4: {"ike.payloads": "type 15 in Main Mode is draft NAT-D; tshark takes it for SAK and stops"},
    },
    "public/zeek-spicy-ipsec/ipsec-ikev1-payload-bad-length.pcap": {
        # The SA is followed by a VID whose Payload Length is 3, less than
        # its own 4-byte generic header.  Ours ends the chain there and
        # records it as a bad_length anomaly (the payload has no valid
        # bounds); tshark lists it, then steps 4 bytes on and dissects the
        # VID's contents as another VID (length 7297) before giving up.
        1: {"ike.payloads": "VID with Payload Length 3 < 4: ours ends the chain (bad_length), tshark "
                            "lists it and a garbage VID read from inside it"},
    },
}


# ---------------------------------------------------------------------------
def _payload_names(version: int, types) -> tuple[str, ...]:
    """tshark's payload type numbers, named as our dissectors name them."""
    if version == 2:
        return tuple(iana.name(iana.IKEV2_PAYLOAD_TYPES, "ikev2-payload-type", t) for t in types)
    return tuple(iana.name(iana.ISAKMP_PAYLOAD_TYPES, "isakmp-payload-type", t) for t in types)


def _ours_fragment(f: FrameInfo) -> bool:
    return f.category == "analysed:ip-fragment"


def _tshark_fragment(t: TsharkFrame) -> bool:
    """An IP fragment tshark held for reassembly: the outermost IP header has
    MF set or a non-zero offset, the frame did not complete a datagram, and
    nothing above IP was dissected (tshark dissects an incomplete first
    fragment it cannot reassemble as if it were whole; so does our decoder)."""
    protos = t.outer_protocols
    if t.fragment_count:
        return False
    net = [i for i, p in enumerate(protos) if p in ("ip", "ipv6")]
    if not net:
        return False
    first, inner = net[0], (net[1:] or [len(protos)])[0]
    if protos[first] == "ip":
        at, flagged = first, bool(t.ip_mf) and (t.ip_mf[0] or t.ip_frag_offset[0] > 0)
    elif "ipv6.fraghdr" in protos[first:inner] and t.ipv6_frag_offset:
        at = protos.index("ipv6.fraghdr", first, inner)
        flagged = t.ipv6_frag_offset[0] > 0 or t.ipv6_frag_more[0]
    else:
        return False
    return flagged and protos[at + 1:at + 2] in ((), ("data",))


def compare(f: FrameInfo, t: TsharkFrame) -> list[tuple[str, object, object]]:
    """(field, ours, tshark) for every compared field of one frame."""
    rows: list[tuple[str, object, object]] = []
    for proto in ("esp", "ah", "isakmp", "udpencap"):
        rows.append((proto, proto in f.protocols, t.has(proto)))
    rows.append(("esp.spi", () if f.esp_spi is None else (f.esp_spi,), t.outer("esp_spi")))
    rows.append(("esp.seq", () if f.esp_seq is None else (f.esp_seq,), t.outer("esp_seq")))
    rows.append(("ah.spi", tuple(f.ah_spi), t.outer("ah_spi")))
    rows.append(("ah.seq", tuple(f.ah_seq), t.outer("ah_seq")))
    ike = f.ike
    rows.append(("ike.ispi", () if ike is None else (ike.ispi,), t.outer("ispi")))
    rows.append(("ike.rspi", () if ike is None else (ike.rspi,), t.outer("rspi")))
    rows.append(("ike.version", () if ike is None else (ike.version,), t.outer("ike_version")))
    rows.append(("ike.exchange", () if ike is None else (ike.exchange_type,), t.outer("exchange_type")))
    rows.append(("ike.mid", () if ike is None else (ike.mid,), t.outer("mid")))
    if ike is not None or t.has("isakmp"):
        version = ike.version if ike is not None else next(iter(t.outer("ike_version")), 1)
        ours = tuple(ike.payloads) if ike is not None else ()
        if ours == ("encrypted",) and version == 1:
            ours = ()  # IKEv1 E flag: tshark lists no payloads (see module docstring)
        rows.append(("ike.payloads", ours, _payload_names(version, t.top_level_payloads)))
    rows.append(("ip.fragment", _ours_fragment(f), _tshark_fragment(t)))
    if hasattr(f, "quoted"):  # what an ICMP error's quote carried (esp/ah/isakmp), as a multiset
        rows.append(("icmp.quoted", sorted(p for p in f.quoted if p in QUOTED_PROTOCOLS),
                     sorted(p for p in t.quoted_protocols if p in QUOTED_PROTOCOLS)))
    if f.ip_fragments or t.fragment_count:
        rows.append(("ip.fragments", f.ip_fragments, t.fragment_count))
    return rows


def _is_compared(field: str, ours, theirs) -> bool:
    """Count a value field only where either side has a value."""
    if isinstance(ours, bool):
        return True
    return bool(ours) or bool(theirs)


@pytest.mark.parametrize("capture", CAPTURES, ids=lambda c: c.name)
def test_frames_agree_with_tshark(capture, tshark_frames, tshark_stats):
    ref = tshark_frames(capture.path)
    ours = list(iter_frames(capture.path))
    assert [f.frame for f in ours] == sorted(ref), (
        f"{capture.name}: frame numbers differ: ours {len(ours)} frames, tshark {len(ref)}")

    allowed = KNOWN_DIFFERENCES.get(capture.name, {})
    used: set[tuple[int, str]] = set()
    problems: list[str] = []
    quoted = set()
    for f in ours:
        t = ref[f.frame]
        if any(p in t.quoted_protocols for p in QUOTED_PROTOCOLS):
            quoted.add(f.frame)
        for field, o, r in compare(f, t):
            if not _is_compared(field, o, r):
                continue
            s = tshark_stats.setdefault(field, {"compared": 0, "agree": 0, "justified": 0, "differ": 0})
            s["compared"] += 1
            if o == r:
                s["agree"] += 1
            elif field in allowed.get(f.frame, {}):
                s["justified"] += 1
                used.add((f.frame, field))
            else:
                s["differ"] += 1
                problems.append(f"{capture.name} frame {f.frame} {field}: ours {o!r}, tshark {r!r} "
                                f"[ours {f.category}; tshark {':'.join(t.protocols)}]")
    tshark_stats["_frames"] = tshark_stats.get("_frames", 0) + len(ours)
    tshark_stats["_captures"] = tshark_stats.get("_captures", 0) + 1

    stale = [f"{capture.name} frame {fr} {field}: listed in KNOWN_DIFFERENCES but ours and tshark agree"
             for fr, fields in allowed.items() for field in fields if (fr, field) not in used]
    expected_quotes = ICMP_QUOTES.get(capture.name, frozenset())
    if quoted != expected_quotes:
        problems.append(f"{capture.name}: frames whose ICMP quote tshark dissects as IPsec: "
                        f"{sorted(quoted)}, ICMP_QUOTES lists {sorted(expected_quotes)}")
    problems += stale
    if problems:
        shown = problems[:60]
        more = f"\n... and {len(problems) - 60} more" if len(problems) > 60 else ""
        pytest.fail(f"{len(problems)} disagreement(s) with tshark:\n" + "\n".join(shown) + more,
                    pytrace=False)
