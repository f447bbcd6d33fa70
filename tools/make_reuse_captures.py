#!/usr/bin/env python3
"""Make the synthetic captures of the reuse rules (fixtures/synthetic/).

No implementation we can run reuses key material, so these two captures
are made on purpose; each says exactly what was done, in this docstring and
in a JSON record beside it.

``ike-dh-reuse.pcap`` (rules dh_public_value_reused and nonce_reused)
    The IKE_SA_INIT exchange of the real strongSwan capture
    ``fixtures/strongswan/ikev2-gcm/capture.pcap`` (its first two IKE
    messages: request and answer, on UDP 500), written twice: as recorded,
    and 60 s later with both IKE SPIs changed (initiator SPI +1, responder
    SPI +1), as an implementation that caches its Diffie-Hellman values and
    nonces would send a second IKE SA.  Only the 16 SPI bytes change; the IPv4
    header checksum does not depend on them and the UDP checksum is set to 0
    ("none", RFC 768), so tshark dissects every packet as valid.  Expected:
    each peer's KE value and nonce appear in two exchanges of two IKE SAs.

``esp-key-reuse.pcap`` + ``esp-key-reuse.esp_sa`` (rule key_material_reused)
    ESP in tunnel mode, AES-GCM with a 16-byte ICV (RFC 4106), between
    198.51.100.1 and 198.51.100.2: two SAs, SPI 0x00001001 and 0x00001002,
    encrypted with **the same key and salt** (a fixed, published test value),
    each carrying 4 ICMP echo requests (inner 10.9.0.1 -> 10.9.0.2) with
    sequence numbers 1..4 and explicit IVs equal to the sequence number.
    Encrypted here with the ``cryptography`` package's AESGCM (not with
    ipsecpcap's code), so decrypting it is a real check.  The key table is
    Wireshark 4.0's 8-column ``esp_sa`` format, one line per SA.

``esp-carrying-ah.pcap`` + ``esp-carrying-ah.esp_sa`` (rule ah_esp_double_processing)
    ESP in tunnel mode (AES-GCM-16, the same published test key) between
    198.51.100.1 and 198.51.100.2, SPI 0x00002001, whose inner packets
    (10.9.0.1 -> 10.9.0.2) are AH in transport mode (SPI 0x00003001, HMAC-SHA1-96
    ICV of random bytes: no AH key is given, nothing verifies it) protecting an
    ICMP echo request: ESP carrying AH, 3 packets.  tshark decrypts the ESP
    with the esp_sa table and shows the AH inside.

    python3 tools/make_reuse_captures.py      # rewrites all of them, deterministically
"""
from __future__ import annotations

import hashlib
import json
import os
import struct

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "fixtures", "synthetic")
SOURCE = "fixtures/strongswan/ikev2-gcm/capture.pcap"
KEY = bytes(range(0x10, 0x20))  # a published test key: this file is the only place it is used
SALT = bytes.fromhex("cafe0001")
PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)  # Ethernet


def records(path):
    with open(path, "rb") as f:
        data = f.read()
    assert struct.unpack_from("<I", data)[0] == 0xA1B2C3D4, "little-endian microsecond pcap expected"
    p = 24
    while p + 16 <= len(data):
        sec, usec, incl, orig = struct.unpack_from("<IIII", data, p)
        yield sec, usec, data[p + 16:p + 16 + incl]
        p += 16 + incl


def record(sec, usec, frame: bytes) -> bytes:
    return struct.pack("<IIII", sec, usec, len(frame), len(frame)) + frame


def ike_messages(frame: bytes):
    """(offset of the IKE header, UDP header offset) in an Ethernet/IPv4/UDP 500 frame, else None."""
    if frame[12:14] != b"\x08\x00" or frame[23] != 17:
        return None
    ihl = (frame[14] & 15) * 4
    udp = 14 + ihl
    sport, dport = struct.unpack_from("!HH", frame, udp)
    if 500 not in (sport, dport):
        return None
    return udp + 8, udp


def ike_dh_reuse() -> dict:
    src = os.path.join(ROOT, SOURCE)
    picked = []
    for n, (sec, usec, frame) in enumerate(records(src), 1):
        if ike_messages(frame) and frame[ike_messages(frame)[0] + 18] == 34:  # exchange type IKE_SA_INIT
            picked.append((n, sec, usec, frame))
        if len(picked) == 2:
            break
    assert len(picked) == 2
    out = [PCAP_HEADER]
    frames = []
    for copy in (0, 1):
        for n, sec, usec, frame in picked:
            ike, udp = ike_messages(frame)
            f = bytearray(frame)
            f[udp + 6:udp + 8] = b"\x00\x00"  # UDP checksum: none
            if copy:
                for off in (ike, ike + 8):  # initiator and responder SPI
                    spi = int.from_bytes(f[off:off + 8], "big")
                    if spi:
                        f[off:off + 8] = ((spi + 1) % (1 << 64)).to_bytes(8, "big")
            out.append(record(sec + 60 * copy, usec, bytes(f)))
            frames.append({"output_frame": len(frames) + 1, "source_frame": n, "copy": copy})
    path = os.path.join(OUT, "ike-dh-reuse.pcap")
    with open(path, "wb") as f:
        f.write(b"".join(out))
    return {"output": "fixtures/synthetic/ike-dh-reuse.pcap", "source": SOURCE, "frames": frames,
            "sha256": _sha(path), "source_sha256": _sha(src),
            "expect": "KE and Nonce of 192.0.2.1 in frames 1 and 3, of 192.0.2.2 in frames 2 and 4"}


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(src: str, dst: str, proto: int, payload: bytes, ident: int) -> bytes:
    h = bytearray(struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0, 64, proto, 0,
                              bytes(map(int, src.split("."))), bytes(map(int, dst.split(".")))))
    h[10:12] = _csum(bytes(h)).to_bytes(2, "big")
    return bytes(h) + payload


def esp_key_reuse() -> dict:
    aead = AESGCM(KEY)
    out = [PCAP_HEADER]
    eth = bytes.fromhex("020000000002" "020000000001" "0800")
    t0 = 1_790_000_000
    n = 0
    sas = (0x00001001, 0x00001002)
    for seq in range(1, 5):
        for spi in sas:
            n += 1
            icmp = bytearray(struct.pack("!BBHHH", 8, 0, 0, spi & 0xFFFF, seq) + b"ipsecpcap key reuse test")
            icmp[2:4] = _csum(bytes(icmp)).to_bytes(2, "big")
            inner = ipv4("10.9.0.1", "10.9.0.2", 1, bytes(icmp), n)
            pad = (-(len(inner) + 2)) % 4
            plain = inner + bytes(range(1, pad + 1)) + bytes([pad, 4])  # next header 4: IPv4 (tunnel)
            iv = seq.to_bytes(8, "big")
            aad = struct.pack("!II", spi, seq)
            sealed = aead.encrypt(SALT + iv, plain, aad)  # ciphertext || 16-byte ICV
            esp = aad + iv + sealed
            out.append(record(t0 + n, 0, eth + ipv4("198.51.100.1", "198.51.100.2", 50, esp, 1000 + n)))
    path = os.path.join(OUT, "esp-key-reuse.pcap")
    with open(path, "wb") as f:
        f.write(b"".join(out))
    keyhex = "0x" + (KEY + SALT).hex()
    table = os.path.join(OUT, "esp-key-reuse.esp_sa")
    with open(table, "w") as f:
        f.write("# tools/make_reuse_captures.py: two SAs, one key (on purpose)\n")
        for spi in sas:
            f.write(f'"IPv4","198.51.100.1","198.51.100.2","0x{spi:08x}","AES-GCM with 16 octet ICV [RFC4106]",'
                    f'"{keyhex}","NULL",""\n')
    return {"output": "fixtures/synthetic/esp-key-reuse.pcap", "keys": "fixtures/synthetic/esp-key-reuse.esp_sa",
            "sas": [f"0x{s:08x}" for s in sas], "packets_per_sa": 4, "sha256": _sha(path)}


def esp_carrying_ah() -> dict:
    import random

    rnd = random.Random(4302)  # deterministic "ICV" bytes
    aead = AESGCM(KEY)
    out = [PCAP_HEADER]
    eth = bytes.fromhex("020000000002" "020000000001" "0800")
    t0 = 1_790_000_100
    spi, ah_spi = 0x00002001, 0x00003001
    for seq in range(1, 4):
        icmp = bytearray(struct.pack("!BBHHH", 8, 0, 0, 7, seq) + b"ipsecpcap esp carrying ah")
        icmp[2:4] = _csum(bytes(icmp)).to_bytes(2, "big")
        # RFC 4302 2: next header, payload length (in 32-bit words, minus 2), reserved, SPI, seq, ICV
        ah = struct.pack("!BBHII", 1, (12 + 12) // 4 - 2, 0, ah_spi, seq) + bytes(rnd.randrange(256) for _ in range(12))
        inner = ipv4("10.9.0.1", "10.9.0.2", 51, ah + bytes(icmp), 2000 + seq)
        pad = (-(len(inner) + 2)) % 4
        plain = inner + bytes(range(1, pad + 1)) + bytes([pad, 4])
        iv = (0x100 + seq).to_bytes(8, "big")
        aad = struct.pack("!II", spi, seq)
        esp = aad + iv + aead.encrypt(SALT + iv, plain, aad)
        out.append(record(t0 + seq, 0, eth + ipv4("198.51.100.1", "198.51.100.2", 50, esp, 3000 + seq)))
    path = os.path.join(OUT, "esp-carrying-ah.pcap")
    with open(path, "wb") as f:
        f.write(b"".join(out))
    with open(os.path.join(OUT, "esp-carrying-ah.esp_sa"), "w") as f:
        f.write("# tools/make_reuse_captures.py: ESP tunnel carrying AH (on purpose)\n")
        f.write(f'"IPv4","198.51.100.1","198.51.100.2","0x{spi:08x}","AES-GCM with 16 octet ICV [RFC4106]",'
                f'"0x{(KEY + SALT).hex()}","NULL",""\n')
    return {"output": "fixtures/synthetic/esp-carrying-ah.pcap", "keys": "fixtures/synthetic/esp-carrying-ah.esp_sa",
            "esp_spi": f"0x{spi:08x}", "ah_spi": f"0x{ah_spi:08x}", "packets": 3, "sha256": _sha(path)}


def _sha(path) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main() -> None:
    os.makedirs(OUT, exist_ok=True)
    for name, fn in (("ike-dh-reuse", ike_dh_reuse), ("esp-key-reuse", esp_key_reuse),
                     ("esp-carrying-ah", esp_carrying_ah)):
        rec = fn()
        rec["made_by"] = "tools/make_reuse_captures.py"
        with open(os.path.join(OUT, f"{name}.json"), "w") as f:
            json.dump(rec, f, indent=1)
            f.write("\n")
        print(rec["output"], rec["sha256"])


if __name__ == "__main__":
    main()
