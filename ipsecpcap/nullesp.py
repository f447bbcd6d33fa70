"""Is this ESP packet NULL-encrypted?  A heuristic for SAs without keys.

With ENCR_NULL (RFC 2410) the ESP payload is the cleartext packet followed
by the trailer (padding 1, 2, 3, ..., pad length, next header) and the ICV
(RFC 4303 2): no IV, nothing scrambled.  Like Wireshark's "attempt to detect
NULL-encrypted ESP" preference, we try the usual ICV lengths and accept the
packet as NULL when, for one of them, the trailer is consistent *and* the
inner header agrees with the length that is left:

* the padding is the monotonic 1, 2, 3, ... sequence RFC 4303 2.4 requires
  (a pad length of 0 is allowed),
* the next header is one a cleartext payload has (IPv4/IPv6 in tunnel mode,
  TCP/UDP/ICMP/... in transport mode),
* the inner header's own length field (IPv4 total length, IPv6 payload
  length, UDP length) equals the bytes between the ESP header and the
  padding; for TCP and ICMP, whose headers have no length, the header must
  be plausible (TCP data offset, ICMP type).

Encrypted data passes these checks by chance with probability of the order
of 2^-16 or less per packet (IP and UDP: a 16-bit length must match
exactly).  The tracker keeps the first packet of each SA direction (head
and tail, ``Tracker.esp_samples``); that is what we look at.
"""
from __future__ import annotations

ICV_LENGTHS = (12, 16, 8, 24, 32, 0)  # HMAC-*-96, HMAC-SHA2-256-128/AES-GMAC, ..., none
IPPROTO_IPIP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_IPV6, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_GRE = \
    4, 6, 17, 41, 1, 58, 47
ESP_HEADER = 8  # SPI + sequence number
PADDING = bytes(range(1, 256))  # RFC 4303 2.4: the padding bytes are 1, 2, 3, ...


def looks_like_null_esp(length: int, head: bytes, tail: bytes) -> bool:
    """``length``: bytes of the ESP packet from the SPI on; ``head``/``tail``: its first and last bytes
    (possibly overlapping, as ``Tracker.esp_samples`` keeps them)."""
    return null_layout(length, head, tail) is not None


def null_layout(length: int, head: bytes, tail: bytes) -> tuple[int, int] | None:
    """(ICV length, next header) of the first consistent NULL reading, or None."""
    if length < ESP_HEADER + 2 or len(tail) < 2:
        return None
    inner = head[ESP_HEADER:]
    for icv in ICV_LENGTHS:
        t = len(tail) - icv  # index in tail just after the next-header byte
        if t < 2:
            continue
        nh, pad = tail[t - 1], tail[t - 2]
        inner_len = length - ESP_HEADER - icv - 2 - pad
        if inner_len <= 0:
            continue
        if pad:
            if t - 2 - pad < 0:
                continue
            if tail[t - 2 - pad:t - 2] != PADDING[:pad]:
                continue
        if _inner_ok(nh, inner, inner_len):
            return icv, nh
    return None


def _inner_ok(nh: int, inner: bytes, inner_len: int) -> bool:
    if nh == IPPROTO_IPIP:
        return (len(inner) >= 20 and inner[0] >> 4 == 4 and (inner[0] & 15) >= 5
                and int.from_bytes(inner[2:4], "big") == inner_len)
    if nh == IPPROTO_IPV6:
        return (len(inner) >= 40 and inner[0] >> 4 == 6
                and int.from_bytes(inner[4:6], "big") + 40 == inner_len)
    if nh == IPPROTO_UDP:
        return len(inner) >= 8 and int.from_bytes(inner[4:6], "big") == inner_len
    if nh == IPPROTO_TCP:
        if len(inner) < 20 or inner_len < 20:
            return False
        off = (inner[12] >> 4) * 4
        return 20 <= off <= inner_len and inner[12] & 0x0E == 0  # reserved bits clear
    if nh == IPPROTO_ICMP:
        return len(inner) >= 8 and inner[0] in (0, 3, 5, 8, 11, 12, 13, 14) and inner_len >= 8
    if nh == IPPROTO_ICMPV6:
        return len(inner) >= 8 and inner[0] in (1, 2, 3, 4, 128, 129, 133, 134, 135, 136, 137) and inner_len >= 8
    return False


def cleartext_sas(esp_samples: dict) -> set[tuple[str, str, str]]:
    """The ESP SA directions, as ("0x<spi>", src, dst) in the tables' spelling, whose first
    packet (``Tracker.esp_samples``) reads as NULL-encrypted ESP."""
    from .ikesa import addr_text, split

    out = set()
    for (_proto, spi, addrs), sample in esp_samples.items():
        if looks_like_null_esp(*sample):
            src, dst = split(addrs)
            out.add((f"0x{spi:08x}", addr_text(src), addr_text(dst)))
    return out
