"""UDP encapsulation of ESP and IKE on port 4500 (RFC 3948)."""
from __future__ import annotations

from .records import Anomaly, NattPayload

# RFC 3948, section 2.2: the NAT-keepalive packet is a single octet 0xFF.
KEEPALIVE = b"\xff"
# RFC 3948, section 2.1: IKE messages on port 4500 start with a 4-byte
# Non-ESP Marker of zeroes where ESP would have its SPI.
NON_ESP_MARKER = b"\x00\x00\x00\x00"


def classify_udp4500(payload: bytes) -> NattPayload:
    """Tell apart keep-alive, IKE (non-ESP marker) and ESP in a UDP 4500 payload."""
    n = len(payload)
    if n == 1 and payload[0] == 0xFF:
        return NattPayload("keepalive", 0)
    if n >= 4 and payload[:4] == NON_ESP_MARKER:
        return NattPayload("ike", 4)
    if n >= 8:
        # RFC 3948, section 2.1: a non-zero SPI, then the sequence number.
        return NattPayload("esp", 0)
    return NattPayload("malformed", 0, (Anomaly("truncated", "udpencap", f"{n}-byte payload is neither keep-alive, IKE nor ESP"),))
