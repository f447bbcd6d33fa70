"""ESP header (RFC 4303).

Only the SPI and sequence number are in the clear; everything after them
(IV, ciphertext, padding, pad length, next header, ICV) is opaque without the
SA's keys.
"""
from __future__ import annotations

import struct

from .records import Anomaly, Esp

# RFC 4303, section 2: SPI (4 bytes), Sequence Number (4 bytes)
ESP_HEADER = struct.Struct("!II")
ESP_HEADER_LEN = ESP_HEADER.size


def parse_esp(data: bytes) -> Esp:
    """Dissect the cleartext part of an ESP packet (starting at the SPI)."""
    if len(data) < ESP_HEADER_LEN:
        padded = bytes(data) + b"\x00" * (ESP_HEADER_LEN - len(data))
        spi, seq = ESP_HEADER.unpack(padded)
        return Esp(spi, seq, 0, (Anomaly("truncated", "esp", f"{len(data)} of {ESP_HEADER_LEN} header bytes"),))
    spi, seq = ESP_HEADER.unpack_from(data)
    anomalies: tuple[Anomaly, ...] = ()
    if spi == 0:
        # RFC 4303, section 2.1: SPI 0 is reserved for local use and MUST NOT
        # be sent on the wire (RFC 3948 uses it as the non-ESP marker).
        anomalies = (Anomaly("bad_header", "esp.spi", "reserved SPI 0"),)
    return Esp(spi, seq, len(data) - ESP_HEADER_LEN, anomalies)
