"""IKE dispatcher: one UDP 500/4500 IKE message -> IkeMessage (or IkeSummary).

ISAKMP (RFC 2408 3.1) and IKEv2 (RFC 7296 3.1) share the 28-byte header;
the major version nibble of byte 17 says which dissector reads the rest.
The caller strips the RFC 3948 non-ESP marker on port 4500 first.

``summarize_ike`` gives what the analysis keeps of a message
(:class:`~.records.IkeSummary`).  Most messages of a long capture are
encrypted and well formed: for those it reads the header and the encrypted
payload's generic header directly; anything else is dissected in full.
Both give the summary of :func:`parse_ike`'s record, field for field.
"""
from __future__ import annotations

from .ikev2 import PAYLOAD_SK, parse_ikev2
from .isakmp import (FLAG_ENCRYPTION, GENERIC_HEADER, GENERIC_HEADER_LEN, HEADER, IKE_HEADER_LEN, exchange_name,
                     header_only, parse_header, parse_isakmp)
from .records import Anomaly, IkeMessage, IkeSummary

__all__ = ["IKE_HEADER_LEN", "parse_ike", "summarize_ike"]

# RFC 2408 3.1 / RFC 7296 3.1: MjVer is the high nibble of the 18th byte
VERSION_OFFSET = 17

_V1_ENCRYPTED = ("encrypted",)
_V2_SK = ("SK",)


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


def summarize_ike(data: bytes) -> IkeSummary:
    """``IkeSummary.of(parse_ike(data))``, without dissecting what it would drop; never raises."""
    n = len(data)
    if n >= IKE_HEADER_LEN:
        ispi, rspi, np, version, exch, flags, mid, length = HEADER.unpack_from(data)
        major = version >> 4
        # the shapes below are the ones the full dissectors find nothing wrong with:
        # the Length field (RFC 2408 3.1) matches the bytes
        if length == n:
            if major == 1 and flags & FLAG_ENCRYPTION:
                # RFC 2408 3.1: the E flag encrypts every payload after the header
                return IkeSummary(1, version & 0x0F, ispi, rspi, np, exch, exchange_name(1, exch), flags, mid,
                                  length, True, _V1_ENCRYPTED, (), ())
            if major == 2 and np == PAYLOAD_SK and n >= IKE_HEADER_LEN + GENERIC_HEADER_LEN:
                # RFC 7296 3.14: the SK payload comes first and fills the message
                plen = GENERIC_HEADER.unpack_from(data, IKE_HEADER_LEN)[2]
                if plen >= GENERIC_HEADER_LEN and IKE_HEADER_LEN + plen == n:
                    return IkeSummary(2, version & 0x0F, ispi, rspi, np, exch, exchange_name(2, exch), flags, mid,
                                      length, True, _V2_SK, (), ())
    return IkeSummary.of(parse_ike(data))
