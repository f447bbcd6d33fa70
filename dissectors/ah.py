"""Authentication Header (RFC 4302)."""
from __future__ import annotations

import struct

from .records import Ah, Anomaly

# RFC 4302, section 2: Next Header (1), Payload Len (1), Reserved (2), SPI (4),
# Sequence Number (4), then the ICV.
AH_FIXED = struct.Struct("!BBHII")
AH_FIXED_LEN = AH_FIXED.size  # 12


def ah_header_len(payload_len_field: int) -> int:
    """RFC 4302, section 2.2: "the length of AH in 32-bit words (4-byte
    units), minus 2"."""
    return (payload_len_field + 2) * 4


def parse_ah(data: bytes) -> Ah:
    """Dissect an AH header; the data after ``header_len`` is the protected
    next header (``next_header``), which the caller continues into."""
    if len(data) < AH_FIXED_LEN:
        padded = bytes(data) + b"\x00" * (AH_FIXED_LEN - len(data))
        nh, plen, _res, spi, seq = AH_FIXED.unpack(padded)
        return Ah(nh, plen, 0, spi, seq, 0, b"",
                  (Anomaly("truncated", "ah", f"{len(data)} of {AH_FIXED_LEN} header bytes"),))
    nh, plen, _res, spi, seq = AH_FIXED.unpack_from(data)
    hlen = ah_header_len(plen)
    anomalies = []
    if hlen < AH_FIXED_LEN:
        # payload_len 0 or 1 cannot hold SPI and sequence number
        anomalies.append(Anomaly("bad_length", "ah.payload_len", f"header length {hlen} < {AH_FIXED_LEN}"))
        hlen = AH_FIXED_LEN
    if hlen > len(data):
        anomalies.append(Anomaly("truncated", "ah.icv", f"header length {hlen}, {len(data)} bytes present"))
        icv = bytes(data[AH_FIXED_LEN:])
    else:
        icv = bytes(data[AH_FIXED_LEN:hlen])
    return Ah(nh, plen, hlen, spi, seq, hlen - AH_FIXED_LEN, icv, tuple(anomalies))
