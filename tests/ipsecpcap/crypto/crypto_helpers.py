"""Helpers for the crypto tests: a reference ESP encoder, capture reading, esp_sa parsing.

The encoder is written from the RFC text on ``cryptography`` and ``hmac``
directly and shares no code with ``ipsecpcap.crypto``: where no published
ESP packet exists for an algorithm, the tests check ipsecpcap against it.
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import tempfile
from collections import defaultdict
from pathlib import Path

import dpkt
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305

try:
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # pragma: no cover
    TripleDES = algorithms.TripleDES

from ipsecpcap.keymodel import EspKey

ROOT = Path(__file__).resolve().parents[3]
VECTORS = ROOT / "fixtures" / "vectors"
PUBLIC = ROOT / "fixtures" / "public"
STRONGSWAN = ROOT / "fixtures" / "strongswan"


def load_vectors(name: str) -> list[dict]:
    return json.loads((VECTORS / name).read_text())["vectors"]


def key(enc, enc_key=b"", integ="none", integ_key=b"", spi=None, esn=None, protocol="esp") -> EspKey:
    return EspKey(protocol=protocol, spi=spi, src=None, dst=None, enc=enc, enc_key=enc_key, integ=integ,
                  integ_key=integ_key, esn=esn)


# --------------------------------------------------------------------------- reference encoder

# RFC data, written out again here on purpose (not read from the registry under test)
SALT = {"aes-ctr": 4, "aes-gcm8": 4, "aes-gcm12": 4, "aes-gcm16": 4, "null-aes-gmac": 4,
        "aes-ccm8": 3, "aes-ccm12": 3, "aes-ccm16": 3, "chacha20-poly1305": 4}
TAG = {"aes-gcm8": 8, "aes-gcm12": 12, "aes-gcm16": 16, "null-aes-gmac": 16, "aes-ccm8": 8,
       "aes-ccm12": 12, "aes-ccm16": 16, "chacha20-poly1305": 16}
HMACS = {"hmac-md5-96": ("md5", 12), "hmac-sha1-96": ("sha1", 12), "hmac-sha2-256-128": ("sha256", 16),
         "hmac-sha2-384-192": ("sha384", 24), "hmac-sha2-512-256": ("sha512", 32), "hmac-md5-128": ("md5", 16),
         "hmac-sha1-160": ("sha1", 20), "hmac-sha2-256-96": ("sha256", 12)}
ENC_KEYLEN = {"null": 0, "aes-cbc": 16, "aes-ctr": 16, "aes-gcm8": 16, "aes-gcm12": 24, "aes-gcm16": 32,
              "null-aes-gmac": 16, "aes-ccm8": 16, "aes-ccm12": 24, "aes-ccm16": 32, "chacha20-poly1305": 32,
              "3des-cbc": 24, "des-cbc": 8}
INTEG_KEYLEN = {"none": 0, "aes-xcbc-96": 16, "aes-cmac-96": 16, **{k: 20 for k in HMACS}}


def xcbc_reference(k: bytes, msg: bytes) -> bytes:
    """RFC 3566 section 4, block by block with AES-ECB."""
    ecb = Cipher(algorithms.AES(k), modes.ECB()).encryptor()
    k1, k2, k3 = (ecb.update(bytes([i]) * 16) for i in (1, 2, 3))
    e1 = Cipher(algorithms.AES(k1), modes.ECB()).encryptor()
    blocks = [msg[i:i + 16] for i in range(0, len(msg), 16)] or [b""]
    e = bytes(16)
    for b in blocks[:-1]:
        e = e1.update(bytes(x ^ y for x, y in zip(b, e)))
    last = blocks[-1]
    if len(last) == 16:
        last = bytes(x ^ y for x, y in zip(last, k2))
    else:
        last = last + b"\x80" + bytes(15 - len(last))
        last = bytes(x ^ y for x, y in zip(last, k3))
    return e1.update(bytes(x ^ y for x, y in zip(last, e)))


def icv_reference(integ: str, k: bytes, data: bytes) -> bytes:
    if integ in HMACS:
        name, n = HMACS[integ]
        return hmac.new(k, data, getattr(hashlib, name)).digest()[:n]
    if integ == "aes-xcbc-96":
        return xcbc_reference(k, data)[:12]
    if integ == "aes-cmac-96":
        c = cmac.CMAC(algorithms.AES(k))
        c.update(data)
        return c.finalize()[:12]
    raise ValueError(integ)


def esp_encode(enc: str, enc_key: bytes, integ: str, integ_key: bytes, payload: bytes, nh: int, *,
               spi: int = 0x11223344, seq: int = 1, seq_hi: int | None = None, iv: bytes | None = None,
               pad: bytes | None = None, rng=os.urandom) -> bytes:
    """An ESP packet (SPI .. ICV) as RFC 4303 and the algorithm RFCs describe it."""
    salt_len = SALT.get(enc, 0)
    k, salt = (enc_key[:-salt_len], enc_key[-salt_len:]) if salt_len else (enc_key, b"")
    block = {"aes-cbc": 16, "3des-cbc": 8, "des-cbc": 8}.get(enc, 4)  # RFC 4303 2.4: 4-byte alignment
    if pad is None:
        n = -(len(payload) + 2) % block
        pad = bytes(range(1, n + 1))
    pt = payload + pad + bytes([len(pad), nh])
    hdr = spi.to_bytes(4, "big") + seq.to_bytes(4, "big")
    aad = hdr if seq_hi is None else hdr[:4] + seq_hi.to_bytes(4, "big") + hdr[4:]
    hi = b"" if seq_hi is None else seq_hi.to_bytes(4, "big")
    if enc == "null":
        body = hdr + pt
    elif enc in ("aes-cbc", "3des-cbc", "des-cbc"):
        iv = iv if iv is not None else rng(16 if enc == "aes-cbc" else 8)
        cipher = algorithms.AES(k) if enc == "aes-cbc" else TripleDES(k if enc == "3des-cbc" else k * 3)
        e = Cipher(cipher, modes.CBC(iv)).encryptor()
        body = hdr + iv + e.update(pt) + e.finalize()
    elif enc == "aes-ctr":  # RFC 3686 section 4: nonce | IV | counter starting at 1
        iv = iv if iv is not None else rng(8)
        e = Cipher(algorithms.AES(k), modes.CTR(salt + iv + b"\x00\x00\x00\x01")).encryptor()
        body = hdr + iv + e.update(pt) + e.finalize()
    elif enc in ("aes-gcm8", "aes-gcm12", "aes-gcm16"):  # RFC 4106: truncated tag = prefix of the 16-byte tag
        iv = iv if iv is not None else rng(8)
        ct = AESGCM(k).encrypt(salt + iv, pt, aad)
        return hdr + iv + ct[:-16] + ct[-16:][:TAG[enc]]
    elif enc == "null-aes-gmac":  # RFC 4543 3: AAD = SPI | seq | IV | payload, no ciphertext
        iv = iv if iv is not None else rng(8)
        return hdr + iv + pt + AESGCM(k).encrypt(salt + iv, b"", aad + iv + pt)
    elif enc.startswith("aes-ccm"):  # RFC 4309: 11-byte nonce = salt | IV
        iv = iv if iv is not None else rng(8)
        return hdr + iv + AESCCM(k, tag_length=TAG[enc]).encrypt(salt + iv, pt, aad)
    elif enc == "chacha20-poly1305":  # RFC 7634: nonce = salt | IV
        iv = iv if iv is not None else rng(8)
        return hdr + iv + ChaCha20Poly1305(k).encrypt(salt + iv, pt, aad)
    else:
        raise ValueError(enc)
    if integ == "none":
        return body
    return body + icv_reference(integ, integ_key, body + hi)  # RFC 4303 3.3.2.2.1: ESN high bits appended


def random_key(enc: str, integ: str, rng) -> tuple[bytes, bytes]:
    return rng(ENC_KEYLEN[enc] + SALT.get(enc, 0)), rng(INTEG_KEYLEN[integ])


# --------------------------------------------------------------------------- key files

WS_ENC = {"NULL": "null", "AES-CBC [RFC3602]": "aes-cbc", "AES-CTR [RFC3686]": "aes-ctr",
          "AES-GCM with 8 octet ICV [RFC4106]": "aes-gcm8", "AES-GCM with 12 octet ICV [RFC4106]": "aes-gcm12",
          "AES-GCM with 16 octet ICV [RFC4106]": "aes-gcm16", "TripleDES-CBC [RFC2451]": "3des-cbc",
          "DES-CBC [RFC2405]": "des-cbc"}
WS_INTEG = {"NULL": "none", "HMAC-SHA-1-96 [RFC2404]": "hmac-sha1-96", "HMAC-MD5-96 [RFC2403]": "hmac-md5-96",
            "HMAC-SHA-256-96 [draft-ietf-ipsec-ciph-sha-256-00]": "hmac-sha2-256-96",
            "HMAC-SHA-256-128 [RFC4868]": "hmac-sha2-256-128", "HMAC-SHA-384-192 [RFC4868]": "hmac-sha2-384-192",
            "HMAC-SHA-512-256 [RFC4868]": "hmac-sha2-512-256",
            "ANY 64 bit authentication [no checking]": "any-64", "ANY 96 bit authentication [no checking]": "any-96",
            "ANY 128 bit authentication [no checking]": "any-128"}


def read_esp_sa(path: Path) -> list[tuple[EspKey, str]]:
    """Wireshark esp_sa UAT lines -> (key, the line itself for tshark's -o uat:esp_sa:...)."""
    out = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        proto, src, dst, spi, enc, ek, integ, ik = next(csv.reader([line]))
        out.append((EspKey("esp", int(spi, 16), None if src == "*" else src, None if dst == "*" else dst,
                           WS_ENC[enc], bytes.fromhex(ek[2:]), WS_INTEG[integ],
                           bytes.fromhex(ik[2:]) if ik else b""), line))
    return out


SS_ENC = {"AES_CBC": "aes-cbc", "AES_GCM_16": "aes-gcm16", "CHACHA20_POLY1305": "chacha20-poly1305",
          "3DES_CBC": "3des-cbc", "DES_CBC": "des-cbc", "NULL": "null"}
SS_INTEG = {None: "none", "HMAC_SHA1_96": "hmac-sha1-96", "HMAC_SHA2_256_128": "hmac-sha2-256-128",
            "HMAC_SHA2_512_256": "hmac-sha2-512-256", "HMAC_MD5_96": "hmac-md5-96"}


def strongswan_keys(scenario: Path) -> list[EspKey]:
    """Every CHILD_SA direction of a strongSwan scenario's expected.json."""
    exp = json.loads((scenario / "expected.json").read_text())
    keys = []
    for child in exp["child_sas"]:
        enc = SS_ENC[child["encryption"]["algorithm"]]
        integ = SS_INTEG[(child["integrity"] or {}).get("algorithm")]
        for sa in child["sas"]:
            keys.append(EspKey("esp", int(sa["spi"], 16), sa["src"], sa["dst"], enc, bytes.fromhex(sa["enc_key"]),
                               integ, bytes.fromhex(sa["integ_key"] or ""), esn=child["esn"]))
    return keys


# --------------------------------------------------------------------------- captures


def frames(path: Path):
    """(frame number, link-layer bytes) of a pcap / pcapng, gzipped or not (Ethernet only here)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        head = f.read(4)
        f.seek(0)
        reader = dpkt.pcapng.Reader(f) if head == b"\x0a\x0d\x0d\x0a" else dpkt.pcap.Reader(f)
        assert reader.datalink() == dpkt.pcap.DLT_EN10MB, f"{path}: link type {reader.datalink()}"
        for n, (_, buf) in enumerate(reader, 1):
            yield n, buf


def ip_packets(path: Path):
    """(frame, IP packet bytes) with IPv4 fragments reassembled (frame = the completing one)."""
    pending = defaultdict(dict)
    for n, buf in frames(path):
        eth = dpkt.ethernet.Ethernet(buf)
        if eth.type == dpkt.ethernet.ETH_TYPE_IP:
            raw = bytes(eth.data)
            ihl = (raw[0] & 15) * 4
            total = int.from_bytes(raw[2:4], "big")
            raw = raw[:total]
            frag = int.from_bytes(raw[6:8], "big")
            more, offset = frag & 0x2000, (frag & 0x1FFF) * 8
            if not more and not offset:
                yield n, raw
                continue
            ident = (raw[12:20], raw[4:6], raw[9])
            parts = pending[ident]
            parts[offset] = (raw[:ihl], raw[ihl:], more)
            data, hdr, at = b"", None, 0
            while at in parts:
                h, d, m = parts[at]
                hdr = hdr or h
                data += d
                at += len(d)
                if not m:
                    del pending[ident]
                    first = bytearray(parts[0][0])
                    first[2:4] = (len(first) + len(data)).to_bytes(2, "big")
                    first[6:8] = b"\x00\x00"
                    yield n, bytes(first) + data
                    break
        elif eth.type == dpkt.ethernet.ETH_TYPE_IP6:
            raw = bytes(eth.data)
            yield n, raw[:40 + int.from_bytes(raw[4:6], "big")]


def esp_packets(path: Path):
    """(frame, IP packet, ESP bytes) for ESP in IP (50) and ESP in UDP 4500 (RFC 3948)."""
    for n, raw in ip_packets(path):
        if raw[0] >> 4 == 4:
            proto, body = raw[9], raw[(raw[0] & 15) * 4:]
        else:
            proto, body = raw[6], raw[40:]  # no extension headers in these captures
        if proto == 50:
            yield n, raw, body
        elif proto == 17 and len(body) > 8 and 4500 in (int.from_bytes(body[0:2], "big"),
                                                         int.from_bytes(body[2:4], "big")):
            esp = body[8:]
            if len(esp) > 8 and esp[:4] != b"\x00\x00\x00\x00":  # not the non-ESP marker (IKE), not a keepalive
                yield n, raw, esp


# --------------------------------------------------------------------------- tshark


def tshark_decrypted(capture: Path, esp_sa_lines: list[str]) -> dict[int, list[bytes]] | None:
    """tshark's "Decrypted Data" data sources per frame (outermost first), or None without tshark."""
    exe = shutil.which("tshark")
    if exe is None:
        return None
    with tempfile.TemporaryDirectory() as home:
        args = [exe, "-n", "-r", str(capture), "-o", "esp.enable_encryption_decode:TRUE", "-x"]
        for line in esp_sa_lines:
            args += ["-o", f"uat:esp_sa:{line}"]
        env = {**os.environ, "HOME": home, "XDG_CONFIG_HOME": home}
        out = subprocess.run(args, capture_output=True, text=True, env=env, timeout=120, check=True).stdout
    # -x prints one block per packet, blocks separated by an empty line; a packet with several data
    # sources has a "Name (N bytes):" line before each, a packet with one source has none
    result: dict[int, list[bytes]] = {}
    for frame, block in enumerate(out.split("\n\n"), 1):
        source, chunks = "Frame", []
        for line in block.splitlines() + ["End (0 bytes):"]:
            if line.endswith("bytes):") and not line[0].isspace():
                if source == "Decrypted Data" and chunks:
                    result.setdefault(frame, []).append(bytes.fromhex("".join(chunks)))
                source, chunks = line.split(" (")[0], []
            elif len(line) > 6 and line[4:6] == "  ":
                chunks.append(line[6:6 + 48].replace(" ", ""))
    return result
