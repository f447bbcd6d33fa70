"""AH ICV verification (RFC 4302 3.3.3, 3.4.4 and appendix A).

The receiver's view: copy the packet, zero every field that may change in
transit, replace the ICV (not its padding) with zeros, append the high 32
bits of an extended sequence number after the end of the packet when the SA
uses ESN, compute the ICV and compare.

Mutable fields (RFC 4302 3.3.3.1 and appendix A):

* IPv4 -- TOS (DSCP + ECN), flags + fragment offset, TTL and header checksum
  are zeroed; total length is kept as on the wire.  Options: End of Options
  List, No Operation, Security (130), Extended Security (133), Commercial
  Security (134), Router Alert (148) and Sender Directed Multi-Destination
  Delivery (149) are immutable; every other option is zeroed as a whole
  (type and length too), as in appendix A.1 and Linux ``ah4.c``.  With a
  loose or strict source route the destination address is "mutable but
  predictable": the ICV covers the final destination, which is the last
  address of the route while the route is not complete (pointer <= length),
  else the destination field itself.
* IPv6 -- traffic class, flow label and hop limit are zeroed; payload length
  is kept.  In hop-by-hop and destination options headers before AH, the
  data of every option whose type has the "may change en route" bit (0x20)
  is zeroed (type and length kept; RFC 8200 4.2).  A type 0 or type 2
  routing header is "mutable but predictable": the ICV covers the packet as
  the final destination sees it (the remaining Segments Left swaps of RFC
  2460 4.4 done, Segments Left 0), which leaves a packet captured at the
  destination unchanged.  Other routing types are taken as on the wire.  A
  fragment header (the packet is a fragment) or any other header before AH
  makes the ICV uncomputable: False.

The AH header itself: Payload Length must say 12 bytes + the algorithm's ICV
rounded up to 32 bits (IPv4; Linux's default 64-bit alignment is accepted
too) or 64 bits (IPv6); the reserved field is covered as it is.

``ah_icv_ok`` never raises: malformed input, unknown algorithms and keys the
algorithm cannot take are False.
"""
from __future__ import annotations

from functools import lru_cache
from hmac import compare_digest

from ..keymodel import EspKey
from . import registry

AH = 51
# RFC 4302 appendix A.1: IPv4 options included in the ICV as they are
IPV4_IMMUTABLE = frozenset({0, 1, 130, 133, 134, 148, 149})
LSRR, SSRR = 131, 137
HOP_BY_HOP, ROUTING, FRAGMENT, DEST_OPTS = 0, 43, 44, 60


@lru_cache(maxsize=64)
def _mac(integ: str, key: bytes):
    algo = registry.integ_algo(integ)
    if algo is None or not algo.checked or registry.integ_problem(integ, key):
        return None
    return registry.new_mac(algo, key)


def _align(n: int, a: int) -> int:
    return (n + a - 1) // a * a


def ah_icv_ok(key: EspKey, ip_packet: bytes, ah_offset: int, seq_hi: int | None = None) -> bool:
    """Is the ICV of the AH header at ``ah_offset`` of ``ip_packet`` right for ``key``?

    ``ip_packet`` starts at the IPv4 or IPv6 header that AH follows (after
    any IPv6 extension headers before AH); ``seq_hi`` is the high half of
    the extended sequence number, or None without ESN.
    """
    try:
        buf = bytearray(ip_packet)
        mac = _mac(key.integ, bytes(key.integ_key))
    except (TypeError, ValueError):
        return False
    if mac is None or not isinstance(ah_offset, int) or ah_offset < 20 or len(buf) < ah_offset + 12:
        return False
    if seq_hi is not None and (not isinstance(seq_hi, int) or not 0 <= seq_hi <= 0xFFFFFFFF):
        return False
    version = buf[0] >> 4
    if version == 4:
        end = (buf[2] << 8) | buf[3]
        if not _mask_v4(buf, ah_offset):
            return False
        aligns = (4, 8)
    elif version == 6:
        plen = (buf[4] << 8) | buf[5]
        end = 40 + plen if plen else len(buf)  # 0: jumbogram (RFC 2675), take what we have
        if not _mask_v6(buf, ah_offset):
            return False
        aligns = (8,)
    else:
        return False
    if end > len(buf) or end < ah_offset + 12:
        return False  # truncated capture, or a length field that does not reach past AH
    icv_len = mac.icv_len
    ah_len = (buf[ah_offset + 1] + 2) * 4  # RFC 4302 2.2: Payload Length in 32-bit words, minus 2
    if ah_len not in {_align(12 + icv_len, a) for a in aligns} or ah_offset + ah_len > end:
        return False
    start = ah_offset + 12
    got = bytes(buf[start:start + icv_len])
    buf[start:start + icv_len] = bytes(icv_len)  # the ICV, not its padding (RFC 4302 3.4.4)
    data = memoryview(buf)[:end]
    want = mac.icv(data, seq_hi.to_bytes(4, "big")) if seq_hi is not None else mac.icv(data)
    return compare_digest(want, got)


def _mask_v4(b: bytearray, ah_offset: int) -> bool:
    ihl = (b[0] & 15) * 4
    if ihl < 20 or ah_offset != ihl or b[9] != AH:
        return False
    b[1] = 0  # TOS: DSCP + ECN
    b[6] = b[7] = 0  # flags + fragment offset
    b[8] = 0  # TTL
    b[10] = b[11] = 0  # header checksum
    i = 20
    while i < ihl:
        t = b[i]
        if t == 0:  # End of Options List: what follows is padding, covered as it is
            break
        if t == 1:  # No Operation
            i += 1
            continue
        if i + 1 >= ihl:
            return False
        ln = b[i + 1]
        if ln < 2 or i + ln > ihl:
            return False
        if t not in IPV4_IMMUTABLE:
            if t in (LSRR, SSRR) and ln >= 7 and b[i + 2] <= ln:
                b[16:20] = b[i + ln - 4:i + ln]  # route not complete: ICV over the final destination
            b[i:i + ln] = bytes(ln)
        i += ln
    return True


def _mask_v6(b: bytearray, ah_offset: int) -> bool:
    if ah_offset < 40:
        return False
    b[0] &= 0xF0  # version kept; traffic class and flow label zeroed
    b[1] = b[2] = b[3] = 0
    b[7] = 0  # hop limit
    nh, off = b[6], 40
    while off < ah_offset:
        if nh not in (HOP_BY_HOP, DEST_OPTS, ROUTING):
            return False  # fragment, another AH, ESP, an upper layer: no ICV to compute here
        ln = (b[off + 1] + 1) * 8
        if off + ln > ah_offset:
            return False
        if nh == ROUTING:
            if not _predict_routing(b, off, ln):
                return False
        elif not _mask_options(b, off + 2, off + ln):
            return False
        nh, off = b[off], off + ln
    return off == ah_offset and nh == AH


def _mask_options(b: bytearray, i: int, end: int) -> bool:
    """Zero the data of options that may change en route (type bit 0x20)."""
    while i < end:
        t = b[i]
        if t == 0:  # Pad1
            i += 1
            continue
        if i + 1 >= end:
            return False
        ln = b[i + 1]
        if i + 2 + ln > end:
            return False
        if t & 0x20:
            b[i + 2:i + 2 + ln] = bytes(ln)
        i += 2 + ln
    return True


def _predict_routing(b: bytearray, off: int, ln: int) -> bool:
    """Routing types 0 and 2 as the final destination sees them (RFC 2460 4.4 processing)."""
    rtype, left = b[off + 2], b[off + 3]
    if rtype not in (0, 2):
        return True
    n = b[off + 1] // 2  # addresses of 16 bytes after 8 bytes of header
    if 8 + 16 * n > ln or left > n:
        return False
    while left:
        a = off + 8 + 16 * (n - left)
        b[24:40], b[a:a + 16] = b[a:a + 16], b[24:40]
        left -= 1
    b[off + 3] = 0
    return True
