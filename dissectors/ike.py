"""IKE dispatcher: one UDP 500/4500 IKE message -> IkeMessage.

ISAKMP (RFC 2408 3.1) and IKEv2 (RFC 7296 3.1) share the 28-byte header;
the major version nibble of byte 17 says which dissector reads the rest.
The caller strips the RFC 3948 non-ESP marker on port 4500 first.
"""
from __future__ import annotations

from .ikev2 import parse_ikev2
from .isakmp import IKE_HEADER_LEN, header_only, parse_header, parse_isakmp
from .records import Anomaly, IkeMessage

__all__ = ["IKE_HEADER_LEN", "parse_ike"]

# RFC 2408 3.1 / RFC 7296 3.1: MjVer is the high nibble of the 18th byte
VERSION_OFFSET = 17


def parse_ike(data: bytes) -> IkeMessage:
    """Dissect an IKEv1 or IKEv2 message; never raises."""
    data = bytes(data)
    if len(data) < IKE_HEADER_LEN:
        return header_only(data, Anomaly("truncated", "ike.header", f"{len(data)} of {IKE_HEADER_LEN} header bytes"))
    major = data[VERSION_OFFSET] >> 4
    if major == 1:
        return parse_isakmp(data)
    if major == 2:
        return parse_ikev2(data)
    hdr = parse_header(data)
    return header_only(data, Anomaly("bad_header", "ike.header", f"major version {hdr.major} (minor {hdr.minor})"))
