"""Load IPsec and IKE keys from every key-file format analysts have.

``load_keys(paths)`` reads files and directories (a directory: every file in
it, not recursing) into one :class:`~ipsecpcap.keymodel.KeyStore`.  The
format of each file is detected from its content, never from its name:

* Wireshark ``esp_sa`` UAT, 8 columns (Wireshark <= 4.2) or 10 (SN and
  ESN High Bits appended);
* Wireshark ``ikev1_decryption_table`` and ``ikev2_decryption_table``
  (what strongSwan's save-keys plugin writes next to ``esp_sa``);
* ``ip xfrm state`` output, with or without ``-s``;
* tcpdump ``-E`` secrets (``spi@dst algo:secret`` and ``ikev2 I|R`` lines);
* our own YAML or JSON format (``docs/keyfile.md``), starting with
  ``ipsecpcap-keys: 1``.

Every algorithm name is mapped to the canonical names of
:mod:`ipsecpcap.keymodel` by the tables below (``WIRESHARK_ESP_ENC`` and so
on), which are the documentation of the mapping.  A key whose algorithm is
unknown is not loaded and not dropped silently: one line naming the file,
the line and the algorithm goes to ``store.problems``.  Anything that makes
a file unusable (wrong column count, bad hex, bad SPI, a key length the
algorithm cannot have, a YAML syntax error, an unknown format) raises
:class:`KeyFileError`, whose message is one line ``file:line: what`` and
never contains key material: columns are named, values that look like hex
are withheld, and keys are only ever shown by fingerprint.
"""
from __future__ import annotations

import ipaddress
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import EXIT_KEYS, IpsecpcapError
from .keymodel import EspKey, Ikev1Key, Ikev2Key, KeySource, KeyStore

if TYPE_CHECKING:  # imported where a YAML or JSON key file is read (_compose)
    import yaml


class KeyFileError(IpsecpcapError):
    """A key file cannot be used.  The message is one line, without key bytes."""

    exit_code = EXIT_KEYS


# --------------------------------------------------------------------------- algorithms
# Key bytes each canonical cipher takes, salt/nonce included (keymodel):
# RFC 3602 (AES-CBC), RFC 3686 (CTR, +4), RFC 4106 (GCM, +4), RFC 4543 (GMAC,
# +4), RFC 4309 (CCM, +3), RFC 7634 (ChaCha20-Poly1305, 32+4), RFC 2451
# (3DES, 24), RFC 2405 (DES, 8), RFC 2410 (NULL, none).
_AES = (16, 24, 32)
ENC_KEY_BYTES: dict[str, tuple[int, ...]] = {
    "null": (0,),
    "aes-cbc": _AES,
    "aes-ctr": tuple(n + 4 for n in _AES),
    "aes-gcm8": tuple(n + 4 for n in _AES),
    "aes-gcm12": tuple(n + 4 for n in _AES),
    "aes-gcm16": tuple(n + 4 for n in _AES),
    "null-aes-gmac": tuple(n + 4 for n in _AES),
    "aes-ccm8": tuple(n + 3 for n in _AES),
    "aes-ccm12": tuple(n + 3 for n in _AES),
    "aes-ccm16": tuple(n + 3 for n in _AES),
    "chacha20-poly1305": (36,),
    "3des-cbc": (24,),
    "des-cbc": (8,),
}
ENC_SALT = {"aes-ctr": 4, "aes-gcm8": 4, "aes-gcm12": 4, "aes-gcm16": 4, "null-aes-gmac": 4,
            "aes-ccm8": 3, "aes-ccm12": 3, "aes-ccm16": 3, "chacha20-poly1305": 4}
AEAD = {"aes-gcm8", "aes-gcm12", "aes-gcm16", "null-aes-gmac", "aes-ccm8", "aes-ccm12",
        "aes-ccm16", "chacha20-poly1305"}

# Integrity: exact key lengths (None: HMAC takes any length, RFC 2104) and the
# length the RFC asks for (a different one is kept, with a note in problems).
# RFC 2403/2404/2857 allow other HMAC key lengths, so only RFC 4868 is checked;
# AES-XCBC-MAC-96 (RFC 3566) and AES-CMAC-96 (RFC 4494) take AES-128 keys only.
INTEG_KEY_BYTES: dict[str, tuple[tuple[int, ...] | None, int | None]] = {
    "none": ((0,), None),
    "hmac-md5-96": (None, None),
    "hmac-sha1-96": (None, None),
    "hmac-sha2-256-128": (None, 32),
    "hmac-sha2-384-192": (None, 48),
    "hmac-sha2-512-256": (None, 64),
    "aes-xcbc-96": ((16,), None),
    "aes-cmac-96": ((16,), None),
    "hmac-md5-128": (None, None),
    "hmac-sha1-160": (None, None),
    "hmac-sha2-256-96": (None, None),
    "hmac-ripemd160-96": (None, None),
}
_ANY_INTEG = re.compile(r"any-(\d+)\Z")  # an ICV of <bits> that is skipped, never checked

# Ciphers we know by name but that no canonical name covers: not loaded, noted.
_UNSUPPORTED = "not supported by ipsecpcap"


def _norm(name: str) -> str:
    return " ".join(name.split()).lower()


# Wireshark's ESP SA table (epan/dissectors/packet-ipsec.c; the strings are the
# ones libwireshark 4.0.17 holds, plus newer and older spellings).
WIRESHARK_ESP_ENC: dict[str, str | None] = {
    "NULL": "null",
    "TripleDES-CBC [RFC2451]": "3des-cbc",  # strongSwan's save-keys writes "TripleDes-CBC"
    "AES-CBC [RFC3602]": "aes-cbc",
    "AES-CTR [RFC3686]": "aes-ctr",
    "DES-CBC [RFC2405]": "des-cbc",
    "AES-GCM with 8 octet ICV [RFC4106]": "aes-gcm8",
    "AES-GCM with 12 octet ICV [RFC4106]": "aes-gcm12",
    "AES-GCM with 16 octet ICV [RFC4106]": "aes-gcm16",
    "AES-GCM [RFC4106]": "aes-gcm",  # deprecated: the ICV length is the "ANY n bit" column
    "NULL Encryption with AES-GMAC [RFC4543]": "null-aes-gmac",
    "ChaCha20 with Poly1305 [RFC7634]": "chacha20-poly1305",
    "AES-CCM with 8 octet ICV [RFC4309]": "aes-ccm8",
    "AES-CCM with 12 octet ICV [RFC4309]": "aes-ccm12",
    "AES-CCM with 16 octet ICV [RFC4309]": "aes-ccm16",
    "CAST5-CBC [RFC2144]": None,
    "BLOWFISH-CBC [RFC2451]": None,
    "TWOFISH-CBC": None,
}
WIRESHARK_ESP_AUTH: dict[str, str | None] = {
    "NULL": "none",
    "HMAC-SHA-1-96 [RFC2404]": "hmac-sha1-96",
    "HMAC-SHA1-96 [RFC2404]": "hmac-sha1-96",  # Wireshark 1.x preference spelling
    "HMAC-SHA-256-96 [draft-ietf-ipsec-ciph-sha-256-00]": "hmac-sha2-256-96",
    "HMAC-SHA256": "hmac-sha2-256-96",  # Wireshark 1.x: the KAME/USAGI 96-bit truncation
    "HMAC-SHA-256-128 [RFC4868]": "hmac-sha2-256-128",
    "HMAC-SHA-384-192 [RFC4868]": "hmac-sha2-384-192",
    "HMAC-SHA-512-256 [RFC4868]": "hmac-sha2-512-256",
    "HMAC-MD5-96 [RFC2403]": "hmac-md5-96",
    "MAC-RIPEMD-160-96 [RFC2857]": "hmac-ripemd160-96",
    "AES-XCBC-MAC-96 [RFC3566]": "aes-xcbc-96",
    "AES-CMAC-96 [RFC4494]": "aes-cmac-96",
    "ANY 64 bit authentication [no checking]": "any-64",
    "ANY 96 bit authentication [no checking]": "any-96",
    "ANY 128 bit authentication [no checking]": "any-128",
    "ANY 192 bit authentication [no checking]": "any-192",
    "ANY 256 bit authentication [no checking]": "any-256",
    "ANY 12-bytes of Authentication [No Checking]": "any-96",  # Wireshark 1.x
}
# Wireshark's IKEv2 decryption table (packet-isakmp.c): the key length is in the name.
WIRESHARK_IKEV2_ENC: dict[str, tuple[str, int] | None] = {
    "NULL [RFC2410]": ("null", 0),
    "3DES [RFC2451]": ("3des-cbc", 24),
    **{f"AES-CBC-{b} [RFC3602]": ("aes-cbc", b // 8) for b in (128, 192, 256)},
    **{f"AES-CTR-{b} [RFC5930]": ("aes-ctr", b // 8 + 4) for b in (128, 192, 256)},
    **{f"AES-GCM-{b} with {i} octet ICV [RFC5282]": (f"aes-gcm{i}", b // 8 + 4)
       for b in (128, 192, 256) for i in (8, 12, 16)},
    **{f"AES-CCM-{b} with {i} octet ICV [RFC5282]": (f"aes-ccm{i}", b // 8 + 3)
       for b in (128, 192, 256) for i in (8, 12, 16)},
    "CHACHA20-POLY1305 [RFC7634]": ("chacha20-poly1305", 36),  # newer Wireshark
}
WIRESHARK_IKEV2_INTEG: dict[str, str] = {
    "NONE [RFC4306]": "none",
    "HMAC_MD5_96 [RFC2403]": "hmac-md5-96",
    "HMAC_SHA1_96 [RFC2404]": "hmac-sha1-96",
    "HMAC_MD5_128 [RFC4595]": "hmac-md5-128",
    "HMAC_SHA1_160 [RFC4595]": "hmac-sha1-160",
    "HMAC_SHA2_256_96 [draft-ietf-ipsec-ciph-sha-256-00]": "hmac-sha2-256-96",
    "HMAC_SHA2_256_128 [RFC4868]": "hmac-sha2-256-128",
    "HMAC_SHA2_384_192 [RFC4868]": "hmac-sha2-384-192",
    "HMAC_SHA2_512_256 [RFC4868]": "hmac-sha2-512-256",
    **{f"ANY {b}-bits of Authentication [No Checking]": f"any-{b}" for b in (64, 96, 128, 160, 192, 256)},
}

# Linux XFRM (net/xfrm/xfrm_algo.c names, as ``ip xfrm state`` prints them, and
# the aliases ``ip xfrm state add`` accepts).  AEAD: the canonical name by ICV bits.
XFRM_AEAD: dict[str, dict[int, str]] = {
    "rfc4106(gcm(aes))": {64: "aes-gcm8", 96: "aes-gcm12", 128: "aes-gcm16"},
    "rfc4309(ccm(aes))": {64: "aes-ccm8", 96: "aes-ccm12", 128: "aes-ccm16"},
    "rfc4543(gcm(aes))": {128: "null-aes-gmac"},
    "rfc7539esp(chacha20,poly1305)": {128: "chacha20-poly1305"},
}
XFRM_ENC: dict[str, str | None] = {
    "cbc(aes)": "aes-cbc", "aes": "aes-cbc",
    "cbc(des3_ede)": "3des-cbc", "des3_ede": "3des-cbc",
    "cbc(des)": "des-cbc", "des": "des-cbc",
    "rfc3686(ctr(aes))": "aes-ctr",
    "ecb(cipher_null)": "null", "cipher_null": "null",
    "cbc(cast5)": None, "cast5": None, "cbc(blowfish)": None, "blowfish": None,
    "cbc(serpent)": None, "serpent": None, "cbc(twofish)": None, "twofish": None,
    "cbc(camellia)": None, "camellia": None, "rfc3686(ctr(camellia))": None, "cbc(sm4)": None,
}
# Authentication: hash -> {truncation bits: canonical}; the first entry of each is
# the kernel's default truncation (icv_truncbits) for a plain "auth" line.
XFRM_AUTH: dict[str, dict[int, str]] = {
    "hmac(md5)": {96: "hmac-md5-96", 128: "hmac-md5-128"},
    "hmac(sha1)": {96: "hmac-sha1-96", 160: "hmac-sha1-160"},
    "hmac(sha256)": {96: "hmac-sha2-256-96", 128: "hmac-sha2-256-128"},
    "hmac(sha384)": {192: "hmac-sha2-384-192"},
    "hmac(sha512)": {256: "hmac-sha2-512-256"},
    "hmac(rmd160)": {96: "hmac-ripemd160-96"},
    "xcbc(aes)": {96: "aes-xcbc-96"},
    "cmac(aes)": {96: "aes-cmac-96"},
    "digest_null": {0: "none"},
}
_XFRM_AUTH_ALIAS = {"md5": "hmac(md5)", "sha1": "hmac(sha1)", "sha256": "hmac(sha256)",
                    "sha384": "hmac(sha384)", "sha512": "hmac(sha512)", "rmd160": "hmac(rmd160)"}

# tcpdump -E (print-esp.c): the ESP name is an OpenSSL cipher name after
# "-hmac96" (a 12-byte ICV, not checked) and "-cbc" are cut off.
TCPDUMP_ENC: dict[str, tuple[str, int | None] | None] = {
    "3des": ("3des-cbc", 24), "des3": ("3des-cbc", 24), "des-ede3": ("3des-cbc", 24),
    "3des192": ("3des-cbc", 24),  # Openswan's spelling in ikev2 lines
    "des": ("des-cbc", 8),
    "aes128": ("aes-cbc", 16), "aes192": ("aes-cbc", 24), "aes256": ("aes-cbc", 32),
    "aes-128": ("aes-cbc", 16), "aes-192": ("aes-cbc", 24), "aes-256": ("aes-cbc", 32),
    "aes": ("aes-cbc", None),
    "none": ("null", 0), "null": ("null", 0),
    "cast128": None, "cast5": None, "cast": None, "blowfish": None, "bf": None,
    "rc2": None, "rc5": None, "idea": None,
}
# The authentication part of an "ikev2" line (tcpdump reads sha1 and md5 as a
# 12-byte ICV; Openswan prints sha256 etc. for the RFC 4868 algorithms).
TCPDUMP_AUTH: dict[str, str] = {
    "sha1": "hmac-sha1-96", "md5": "hmac-md5-96",
    "sha256": "hmac-sha2-256-128", "sha2_256": "hmac-sha2-256-128",
    "sha384": "hmac-sha2-384-192", "sha2_384": "hmac-sha2-384-192",
    "sha512": "hmac-sha2-512-256", "sha2_512": "hmac-sha2-512-256",
    "none": "none", "null": "none",
}

_W_ESP_ENC = {_norm(k): v for k, v in WIRESHARK_ESP_ENC.items()}
_W_ESP_AUTH = {_norm(k): v for k, v in WIRESHARK_ESP_AUTH.items()}
_W_IKE_ENC = {_norm(k): v for k, v in WIRESHARK_IKEV2_ENC.items()}
_W_IKE_INTEG = {_norm(k): v for k, v in WIRESHARK_IKEV2_INTEG.items()}


# --------------------------------------------------------------------------- messages
_HEXISH = re.compile(r"(0x)?[0-9a-f]{8,}", re.I)


def _shown(text: object) -> str:
    """A value from the file, safe to put in a one-line message: anything with
    a run of 8+ hex digits is withheld, since it may be key material in the
    wrong column."""
    s = " ".join(str(text).split())
    if _HEXISH.search(s):
        return "<hex value withheld>"
    return repr(s[:60] + ("..." if len(s) > 60 else ""))


@dataclass
class _At:
    """Where an entry is: file, line, format; turns findings into messages."""

    path: str
    line: int
    fmt: str
    store: KeyStore

    def err(self, msg: str) -> KeyFileError:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return KeyFileError(f"{where}: {' '.join(msg.split())}")

    def note(self, msg: str) -> None:
        where = f"{self.path}:{self.line}" if self.line else self.path
        self.store.problems.append(f"{where}: {' '.join(msg.split())}")

    @property
    def source(self) -> KeySource:
        return KeySource(self.path, self.line, self.fmt)


class _Skip(Exception):
    """This entry is not loaded; its reason is already in store.problems."""


def _hex(at: _At, text: str | None, what: str) -> bytes:
    """Hex with or without 0x, any case; empty -> b"" (unknown)."""
    s = (text or "").strip()
    if s[:2].lower() == "0x":
        s = s[2:]
    s = s.replace(":", "") if re.fullmatch(r"[0-9a-fA-F]{2}(:[0-9a-fA-F]{2})+", s) else s
    if not s:
        return b""
    if not re.fullmatch(r"[0-9a-fA-F]+", s):
        raise at.err(f"bad hex in {what}: not a hex string")
    if len(s) % 2:
        raise at.err(f"bad hex in {what}: odd number of hex digits ({len(s)})")
    return bytes.fromhex(s)


def _key_text(at: _At, text: str, what: str) -> bytes:
    """esp_sa and tcpdump keys: 0x... is hex; Wireshark and tcpdump read
    anything else as ASCII text.  Bare hex is read as hex (what people mean),
    other text as ASCII, with a note."""
    s = text.strip()
    if not s or s[:2].lower() == "0x" or re.fullmatch(r"[0-9a-fA-F]+", s):
        return _hex(at, s, what)
    at.note(f"{what} has no 0x and is not hex: read as ASCII text, as Wireshark and tcpdump do")
    return s.encode()


def _spi(at: _At, text: str, what: str = "SPI") -> int | None:
    s = text.strip()
    if s in ("*", ""):
        if not s:
            raise at.err(f"bad {what}: empty")
        return None
    try:
        v = int(s, 16) if s[:2].lower() == "0x" else int(s, 10)
    except ValueError:
        if "*" in s:
            at.note(f"{what} {_shown(s)} with a partial wildcard cannot be kept: matches any SPI")
            return None
        raise at.err(f"bad {what} {_shown(s)}: expected 0x followed by hex digits, a decimal number or *") from None
    if not 0 <= v <= 0xFFFFFFFF:
        raise at.err(f"bad {what}: does not fit in 32 bits")
    return v


# one host address as written -> (as Python writes it, IP version): a key table names the same
# hosts again and again (the benchmark's: 4,440 addresses, 499 different ones)
_ADDRESSES: dict[str, tuple[str, int]] = {}


def _host(s: str) -> tuple[str, int]:
    addr = ipaddress.ip_address(s)  # ValueError when it is not one
    return str(addr), addr.version


def _address(at: _At, text: str | None, what: str, family: int | None = None) -> str | None:
    """An address, a CIDR prefix, Wireshark's '*' and trailing '*' octets; None: any."""
    s = (text or "").strip()
    if s in ("", "*", "any", "0.0.0.0/0", "::/0"):
        return None
    if "*" in s:
        parts = s.split("/")[0].split(".")
        if len(parts) == 4:
            n = 0
            while n < 4 and parts[n] != "*":
                n += 1
            if all(p == "*" for p in parts[n:]) and all(p.isdigit() for p in parts[:n]):
                s = ".".join(parts[:n] + ["0"] * (4 - n)) + f"/{8 * n}"
            else:
                at.note(f"{what} {_shown(s)} has a wildcard that is not a prefix: matches any address")
                return None
        else:
            at.note(f"{what} {_shown(s)} has a wildcard that is not a prefix: matches any address")
            return None
    try:
        if "/" in s:
            net = ipaddress.ip_network(s, strict=False)
            if net.prefixlen == 0:
                return None
            value, version = (str(net.network_address) if net.prefixlen == net.max_prefixlen else str(net)), net.version
        else:
            value, version = _ADDRESSES.get(s) or _ADDRESSES.setdefault(s, _host(s))
    except ValueError:
        raise at.err(f"bad {what} {_shown(s)}: not an IPv4 or IPv6 address or prefix") from None
    if family and version != family:
        raise at.err(f"bad {what} {_shown(s)}: not an IPv{family} address, as the protocol column says")
    return value


# --------------------------------------------------------------------------- checks
def _check_enc(at: _At, enc: str, key: bytes, what: str, exact: int | None = None,
               allow_empty: bool = False) -> bytes:
    sizes = ENC_KEY_BYTES[enc]
    if enc == "null":
        if key:
            at.note(f"{what} given for NULL encryption is ignored")
        return b""
    if not key:
        if allow_empty:
            return b""
        raise at.err(f"{what} missing for {enc}")
    if exact is not None and len(key) != exact:
        raise at.err(f"{what} for {enc} is {len(key)} bytes; the algorithm name says {exact}")
    if len(key) not in sizes:
        salt = ENC_SALT.get(enc, 0)
        want = ", ".join(str(n) for n in sizes[:-1]) + (" or " if len(sizes) > 1 else "") + str(sizes[-1])
        extra = f" (key + {salt}-byte salt)" if salt else ""
        raise at.err(f"{what} for {enc} is {len(key)} bytes; expected {want}{extra}")
    return key


def _check_integ(at: _At, integ: str, key: bytes, what: str) -> bytes:
    if _ANY_INTEG.match(integ) or integ == "none":
        if key and integ == "none":
            at.note(f"{what} given for no integrity is ignored")
        return b""  # nothing to check with
    if not key:
        return b""  # unknown: the ICV is skipped (keymodel)
    exact, rfc = INTEG_KEY_BYTES[integ]
    if exact is not None and len(key) not in exact:
        raise at.err(f"{what} for {integ} is {len(key)} bytes; expected {exact[0]}")
    if rfc is not None and len(key) != rfc:
        at.note(f"{what} for {integ} is {len(key)} bytes; RFC 4868 asks for {rfc} (key kept)")
    return key


def _pair(at: _At, enc: str, integ: str) -> None:
    if enc in AEAD and integ != "none":
        raise at.err(f"{enc} is an AEAD cipher and takes no separate integrity algorithm (found {integ})")


# --------------------------------------------------------------------------- names for our own format
_VARIABLE = {"aes-cbc", "aes-ctr", "aes-gcm8", "aes-gcm12", "aes-gcm16", "null-aes-gmac",
             "aes-ccm8", "aes-ccm12", "aes-ccm16"}


def _any_enc(at: _At, name: str, what: str) -> tuple[str, int | None]:
    """Canonical (optionally with -128/-192/-256), Wireshark ESP/IKEv2 or xfrm
    spelling -> (canonical, exact key bytes or None).  Unknown: note + _Skip."""
    raw = " ".join(str(name).split())
    n = raw.lower()
    if n in ENC_KEY_BYTES:
        return n, None
    m = re.fullmatch(r"(.+)-(128|192|256)", n)
    if m and m.group(1) in _VARIABLE:
        return m.group(1), int(m.group(2)) // 8 + ENC_SALT.get(m.group(1), 0)
    if n in _W_ESP_ENC and _W_ESP_ENC[n] not in (None, "aes-gcm"):
        return _W_ESP_ENC[n], None
    if n in _W_IKE_ENC and _W_IKE_ENC[n]:
        return _W_IKE_ENC[n]
    parts = n.split()
    if parts and parts[0] in XFRM_AEAD:
        bits = XFRM_AEAD[parts[0]]
        if len(parts) == 2 and parts[1].isdigit() and int(parts[1]) in bits:
            return bits[int(parts[1])], None
        if len(parts) == 1 and len(bits) == 1:
            return next(iter(bits.values())), None
        at.note(f"{what} {_shown(raw)} needs its ICV length in bits, e.g. '{parts[0]} 128'; key not loaded")
        raise _Skip
    if n in XFRM_ENC and XFRM_ENC[n]:
        return XFRM_ENC[n], None
    _unknown(at, what, raw)


def _any_integ(at: _At, name: str, what: str) -> str:
    raw = " ".join(str(name).split())
    n = raw.lower()
    if n in INTEG_KEY_BYTES or _ANY_INTEG.match(n):
        return n
    if n in _W_ESP_AUTH and _W_ESP_AUTH[n]:
        return _W_ESP_AUTH[n]
    if n in _W_IKE_INTEG:
        return _W_IKE_INTEG[n]
    got = _xfrm_auth(n.split()[0] if n else n, n.split()[1] if len(n.split()) == 2 else None)
    if got:
        return got
    _unknown(at, what, raw)


def _xfrm_auth(name: str, bits: str | None) -> str | None:
    name = _XFRM_AUTH_ALIAS.get(name, name)
    table = XFRM_AUTH.get(name)
    if not table:
        return None
    if bits is None:
        return next(iter(table.values()))  # "auth": the kernel's default truncation
    return table.get(int(bits)) if bits.isdigit() else None


def _unknown(at: _At, what: str, raw: str, known_unsupported: bool = False):
    if known_unsupported:
        at.note(f"{what} {_shown(raw)} is {_UNSUPPORTED}; key not loaded")
    else:
        at.note(f"unknown {what} {_shown(raw)}; key not loaded")
    raise _Skip


# --------------------------------------------------------------------------- Wireshark UAT
def _uat_fields(at: _At, line: str) -> list[str]:
    """Split one UAT line: "quoted" (with \\" and \\xHH escapes) or bare fields."""
    out: list[str] = []
    i, n = 0, len(line)
    while True:
        while i < n and line[i] in " \t":
            i += 1
        if i < n and line[i] == '"':
            i += 1
            j = line.find('"', i)
            if j >= 0 and "\\" not in line[i:j]:  # no escape before the closing quote: the field is the slice
                out.append(line[i:j])
                i = j + 1
            else:
                buf = []
                while i < n and line[i] != '"':
                    c = line[i]
                    if c == "\\" and i + 1 < n:
                        if line[i + 1] == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", line[i + 2:i + 4]):
                            buf.append(chr(int(line[i + 2:i + 4], 16)))
                            i += 4
                            continue
                        buf.append(line[i + 1])
                        i += 2
                        continue
                    buf.append(c)
                    i += 1
                if i >= n:
                    raise at.err(f"unterminated quoted field in column {len(out) + 1}")
                i += 1
                out.append("".join(buf))
        else:
            j = line.find(",", i)
            j = n if j < 0 else j
            out.append(line[i:j].strip())
            i = j
        while i < n and line[i] in " \t":
            i += 1
        if i >= n:
            return out
        if line[i] != ",":
            raise at.err(f"expected ',' after column {len(out)}")
        i += 1
        if i >= n:
            out.append("")
            return out


_ESP_COLS = ("protocol", "source address", "destination address", "SPI", "encryption algorithm",
             "encryption key", "authentication algorithm", "authentication key", "SN", "ESN high bits")


def _esp_sa_line(at: _At, line: str) -> EspKey:
    f = _uat_fields(at, line)
    if len(f) not in (8, 10):
        raise at.err(f"expected 8 or 10 comma-separated columns, found {len(f)}")
    proto = f[0].strip().lower()
    family = {"ipv4": 4, "ipv6": 6, "any": None}.get(proto, -1)
    if family == -1:
        raise at.err(f"bad protocol {_shown(f[0])}: expected IPv4, IPv6 or Any")
    src = _address(at, f[1], "source address", family)
    dst = _address(at, f[2], "destination address", family)
    spi = _spi(at, f[3])
    enc_name, auth_name = _norm(f[4]), _norm(f[6])
    if enc_name not in _W_ESP_ENC:
        _unknown(at, "ESP encryption algorithm", f[4])
    enc = _W_ESP_ENC[enc_name]
    if enc is None:
        _unknown(at, "ESP encryption algorithm", f[4], known_unsupported=True)
    if auth_name not in _W_ESP_AUTH:
        _unknown(at, "ESP authentication algorithm", f[6])
    integ = _W_ESP_AUTH[auth_name]
    if enc == "aes-gcm":  # "AES-GCM [RFC4106]": the ICV length comes from "ANY n bit"
        m = _ANY_INTEG.match(integ or "")
        if not m or m.group(1) not in ("64", "96", "128"):
            at.note(f"'AES-GCM [RFC4106]' needs 'ANY 64/96/128 bit authentication' for its ICV length, "
                    f"found {_shown(f[6])}; key not loaded")
            raise _Skip
        enc, integ = f"aes-gcm{int(m.group(1)) // 8}", "none"
    _pair(at, enc, integ)
    enc_key = _check_enc(at, enc, _key_text(at, f[5], "column 'encryption key'"), "encryption key")
    integ_key = _check_integ(at, integ, _key_text(at, f[7], "column 'authentication key'"),
                             "authentication key")
    esn, esn_high = None, 0
    if len(f) == 10:
        sn = _norm(f[8])
        if sn.startswith("32"):
            esn = False
        elif sn.startswith("64") or "esn" in sn or "extended" in sn:
            esn = True
        else:
            raise at.err(f"bad SN {_shown(f[8])}: expected 32-bit or 64-bit")
        hb = f[9].strip() or "0"
        try:
            esn_high = int(hb, 16) if hb[:2].lower() == "0x" else int(hb, 10)
        except ValueError:
            raise at.err(f"bad ESN high bits {_shown(f[9])}: expected a number") from None
        if not 0 <= esn_high <= 0xFFFFFFFF:
            raise at.err("bad ESN high bits: does not fit in 32 bits")
        if esn is False and esn_high:
            raise at.err("ESN high bits given with a 32-bit SN")
    return EspKey("esp", spi, src, dst, enc, enc_key, integ, integ_key, esn=esn, source=at.source,
                  esn_high=esn_high)


def _ike_spi(at: _At, text: str, what: str) -> bytes:
    s = text.strip()
    if s[:2].lower() == "0x":
        s = s[2:]
    if not re.fullmatch(r"[0-9a-fA-F]{16}", s):
        raise at.err(f"bad {what}: expected 16 hex digits (8 bytes)")
    return bytes.fromhex(s)


def _ikev2_line(at: _At, line: str) -> Ikev2Key:
    f = _uat_fields(at, line)
    if len(f) != 8:
        raise at.err(f"expected 8 comma-separated columns, found {len(f)}")
    ispi = _ike_spi(at, f[0], "initiator's SPI")
    rspi = _ike_spi(at, f[1], "responder's SPI")
    got = _W_IKE_ENC.get(_norm(f[4]), False)
    if got is False:
        _unknown(at, "IKEv2 encryption algorithm", f[4])
    enc, exact = got
    integ = _W_IKE_INTEG.get(_norm(f[7]))
    if integ is None:
        _unknown(at, "IKEv2 integrity algorithm", f[7])
    return _ikev2_key(at, ispi, rspi, enc, exact, integ,
                      _hex(at, f[2], "column 'SK_ei'"), _hex(at, f[3], "column 'SK_er'"),
                      _hex(at, f[5], "column 'SK_ai'"), _hex(at, f[6], "column 'SK_ar'"))


def _ikev2_key(at: _At, ispi: bytes, rspi: bytes, enc: str, exact: int | None, integ: str,
               sk_ei: bytes, sk_er: bytes, sk_ai: bytes, sk_ar: bytes) -> Ikev2Key:
    _pair(at, enc, integ)
    sk_ei = _check_enc(at, enc, sk_ei, "SK_ei", exact, allow_empty=True)
    sk_er = _check_enc(at, enc, sk_er, "SK_er", exact, allow_empty=True)
    if enc != "null":
        for name, k, d in (("SK_ei", sk_ei, "initiator"), ("SK_er", sk_er, "responder")):
            if not k:
                at.note(f"{name} is empty: messages from the {d} cannot be decrypted")
    sk_ai = _check_integ(at, integ, sk_ai, "SK_ai")
    sk_ar = _check_integ(at, integ, sk_ar, "SK_ar")
    return Ikev2Key(ispi, rspi, enc, sk_ei, sk_er, integ, sk_ai, sk_ar, source=at.source)


# RFC 2409 appendix B: the phase-1 key is cut to the cipher's key length: DES 8,
# AES-128/Blowfish/CAST 16, 3DES/AES-192 24, AES-256 32.
_IKEV1_KEY_BYTES = (8, 16, 24, 32)


def _ikev1_line(at: _At, line: str) -> Ikev1Key:
    f = _uat_fields(at, line)
    if len(f) != 2:
        raise at.err(f"expected 2 comma-separated columns, found {len(f)}")
    icookie = _ike_spi(at, f[0], "initiator's cookie")
    key = _hex(at, f[1], "column 'encryption key'")
    if not key:
        raise at.err("encryption key missing")
    if len(key) not in _IKEV1_KEY_BYTES:
        at.note(f"encryption key is {len(key)} bytes, not a DES, 3DES or AES key length (key kept)")
    return Ikev1Key(icookie, key, source=at.source)


# --------------------------------------------------------------------------- ip xfrm state
_XFRM_HEAD = re.compile(r"src\s+(\S+)\s+dst\s+(\S+)\s*\Z")
_XFRM_ALGO = re.compile(
    r"(enc|auth|auth-trunc|aead|comp)\s+(\S+)\s+(0x[0-9a-fA-F]*|\"\"|<<Keys hidden>>|\(ERROR truncated\))"
    r"(?:\s+\((\d+) bits\))?(?:\s+(\d+))?\s*\Z")


def _strip_paren(tok: str) -> str:
    return re.sub(r"\(.*\)\Z", "", tok)


class _XfrmState:
    def __init__(self, line: int, src: str, dst: str):
        self.line, self.src, self.dst = line, src, dst
        self.proto: str | None = None
        self.spi: int | None = None
        self.mode: str | None = None
        self.esn = False
        self.algos: list[tuple[int, str, str, str, str | None]] = []  # (line, kind, name, key, bits)
        self.encap: tuple[int, int] | None = None
        self.encap_type: str | None = None
        self.hidden: str | None = None  # why the keys are not in the dump


def _xfrm_states(at: _At, lines: list[tuple[int, str]]) -> list[_XfrmState]:
    states: list[_XfrmState] = []
    cur: _XfrmState | None = None
    for no, raw in lines:
        line = raw.strip()
        at.line = no
        m = _XFRM_HEAD.match(line) if not raw[:1].isspace() else None
        if m:
            cur = _XfrmState(no, m.group(1), m.group(2))
            states.append(cur)
            continue
        if cur is None:
            if line.startswith("$") or "xfrm" in line:
                continue  # a shell prompt pasted above the output
            raise at.err("expected a state starting 'src ADDRESS dst ADDRESS'")
        tok = line.split()
        if tok[0] == "proto":
            cur.proto = tok[1] if len(tok) > 1 else None
            for a, b in zip(tok, tok[1:]):
                if a == "spi":
                    cur.spi = _spi(at, _strip_paren(b))
                elif a == "mode":
                    cur.mode = b
        elif tok[0] == "replay-window":
            if "flag" in tok:
                cur.esn = "esn" in tok[tok.index("flag") + 1:]
        elif tok[0] in ("enc", "auth", "auth-trunc", "aead", "comp"):
            am = _XFRM_ALGO.match(line)
            if not am:
                raise at.err(f"cannot read the '{tok[0]}' line: expected '{tok[0]} NAME 0xKEY'")
            kind, name, key, _bits, icv = am.groups()
            if key.startswith("<<"):
                cur.hidden = "keys hidden ('ip xfrm state' was run with nokeys)"
            elif key.startswith("(ERROR"):
                cur.hidden = f"the '{kind}' attribute was truncated in the dump"
            cur.algos.append((no, kind, name, "" if key == '""' else key, icv))
        elif tok[0] == "encap":
            # encap type espinudp sport 4500 dport 4500 addr 0.0.0.0
            kv = dict(zip(tok[1::2], tok[2::2]))
            cur.encap_type = kv.get("type")
            try:
                cur.encap = (int(kv["sport"]), int(kv["dport"]))
            except (KeyError, ValueError):
                raise at.err("cannot read the 'encap' line: expected 'encap type T sport N dport N'") from None
        # everything else (sel, lifetime, stats, anti-replay, lastused, dir,
        # if_id, output-mark, offload, extra_flag ...) carries no keys
    return states


def _xfrm_key(at: _At, st: _XfrmState) -> EspKey:
    at.line = st.line
    if st.proto not in ("esp", "ah"):
        raise _Skip  # IPComp and the Mobile IPv6 states hold no keys
    if st.spi is None:
        raise at.err("state without an SPI")
    if st.hidden:
        at.note(f"SPI {st.spi:#010x}: {st.hidden}; not loaded")
        raise _Skip
    src = _address(at, st.src, "source address")
    dst = _address(at, st.dst, "destination address")
    enc, integ, enc_key, integ_key = "null", "none", b"", b""
    saw_enc = False
    for no, kind, name, key, icv in st.algos:
        at.line = no
        kb = _hex(at, key, f"the '{kind}' key")
        if kind == "aead":
            table = XFRM_AEAD.get(name)
            if table is None:
                _unknown(at, "xfrm AEAD algorithm", name)
            got = table.get(int(icv)) if icv else None
            if got is None:
                _unknown(at, "xfrm AEAD algorithm", f"{name} {icv or ''}".strip())
            enc, enc_key, saw_enc = got, kb, True
        elif kind == "enc":
            if name not in XFRM_ENC:
                _unknown(at, "xfrm encryption algorithm", name)
            if XFRM_ENC[name] is None:
                _unknown(at, "xfrm encryption algorithm", name, known_unsupported=True)
            enc, enc_key, saw_enc = XFRM_ENC[name], kb, True
        elif kind in ("auth", "auth-trunc"):
            got = _xfrm_auth(name, icv if kind == "auth-trunc" else None)
            if got is None:
                _unknown(at, "xfrm authentication algorithm", f"{name} {icv or ''}".strip())
            integ, integ_key = got, kb
        # comp: IPComp on the same SA carries no key
    at.line = st.line
    if st.proto == "esp" and not saw_enc:
        raise at.err(f"ESP state {st.spi:#010x} without an 'enc' or 'aead' line")
    _pair(at, enc, integ)
    at.line = next((a[0] for a in st.algos if a[1] in ("enc", "aead")), st.line)
    enc_key = _check_enc(at, enc, enc_key, "encryption key")
    at.line = next((a[0] for a in st.algos if a[1] in ("auth", "auth-trunc")), st.line)
    integ_key = _check_integ(at, integ, integ_key, "authentication key")
    at.line = st.line
    encap = None
    if st.encap is not None:
        if st.encap_type in ("espinudp", "espinudp-nonike"):
            encap = st.encap
        else:
            at.note(f"SPI {st.spi:#010x}: encapsulation {_shown(st.encap_type)} (not UDP) is not kept")
    mode = st.mode if st.mode in ("tunnel", "transport") else None
    return EspKey(st.proto, st.spi, src, dst, enc, enc_key, integ, integ_key, esn=st.esn,
                  encap=encap, mode=mode, source=at.source)


def _load_xfrm(at: _At, lines: list[tuple[int, str]]) -> list[EspKey]:
    out = []
    for st in _xfrm_states(at, lines):
        try:
            out.append(_xfrm_key(at, st))
        except _Skip:
            pass
    return out


# --------------------------------------------------------------------------- tcpdump -E
def _tcpdump_enc(at: _At, text: str) -> tuple[str, str, bytes, int | None]:
    """'algo:secret' -> (canonical enc, integ, key, exact length)."""
    algo, sep, secret = text.partition(":")
    if not sep:
        raise at.err("expected ALGORITHM:SECRET")
    name = algo.strip().lower()
    integ = "none"
    if name.endswith("-hmac96") and len(name) > 7:
        # a 12-byte ICV that tcpdump does not check: the same as Wireshark's
        # "ANY 96 bit authentication [no checking]"
        name, integ = name[:-7], "any-96"
    if name.endswith("-cbc") and len(name) > 4:
        name = name[:-4]
    if name not in TCPDUMP_ENC:
        _unknown(at, "tcpdump encryption algorithm", algo)
    got = TCPDUMP_ENC[name]
    if got is None:
        _unknown(at, "tcpdump encryption algorithm", algo, known_unsupported=True)
    enc, exact = got
    return enc, integ, _key_text(at, secret, f"the {algo.strip()} secret"), exact


def _tcpdump_auth(at: _At, text: str) -> tuple[str, bytes]:
    algo, sep, secret = text.partition(":")
    if not sep:
        raise at.err("expected ALGORITHM:SECRET")
    name = algo.strip().lower()
    integ = TCPDUMP_AUTH.get(name) or (name if name in INTEG_KEY_BYTES else None)
    if integ is None:
        _unknown(at, "tcpdump authentication algorithm", algo)
    return integ, _key_text(at, secret, f"the {algo.strip()} secret")


def _load_tcpdump(at: _At, lines: list[tuple[int, str]], seen: set[str]) -> list:
    out: list = []
    halves: dict[tuple[bytes, bytes], dict[str, tuple]] = {}
    order: list[tuple[bytes, bytes]] = []
    for no, raw in lines:
        at.line = no
        line = raw.strip()
        if line.startswith("| "):
            line = line[2:]  # Openswan/Libreswan debug logs print the lines after "| "
        tok = line.split()
        try:
            if tok[0].lower() == "file" and len(tok) == 2:
                out.extend(_tcpdump_include(at, tok[1], seen))
            elif tok[0].lower() == "ikev2":
                if len(tok) != 6 or tok[1] not in ("I", "R"):
                    raise at.err("expected 'ikev2 I|R 0xSPIi 0xSPIr AUTH:0xKEY ENC:0xKEY'")
                ispi = _ike_spi(at, tok[2], "initiator's SPI")
                rspi = _ike_spi(at, tok[3], "responder's SPI")
                integ, akey = _tcpdump_auth(at, tok[4])
                enc, _, ekey, exact = _tcpdump_enc(at, tok[5])
                sa = (ispi, rspi)
                if sa not in halves:
                    halves[sa] = {}
                    order.append(sa)
                if tok[1] in halves[sa]:
                    raise at.err(f"second 'ikev2 {tok[1]}' line for the same SPIs (first on line "
                                 f"{halves[sa][tok[1]][0]})")
                halves[sa][tok[1]] = (no, enc, exact, integ, ekey, akey)
            else:
                out.extend(_tcpdump_esp(at, line))
        except _Skip:
            pass
    for sa in order:
        h = halves[sa]
        first = min(h.values())
        at.line = first[0]
        i, r = h.get("I"), h.get("R")
        if i and r and (i[1], i[3]) != (r[1], r[3]):
            raise at.err(f"the 'ikev2 I' and 'ikev2 R' lines (lines {i[0]} and {r[0]}) disagree on the "
                         "algorithms")
        if not (i and r):
            missing = "R" if i else "I"
            at.note(f"'ikev2 {'I' if i else 'R'}' line for {sa[0].hex()}/{sa[1].hex()} has no "
                    f"'ikev2 {missing}' line: the {'responder' if i else 'initiator'}'s keys are unknown")
        _, enc, exact, integ, _, _ = first
        try:
            out.append(_ikev2_key(at, sa[0], sa[1], enc, exact, integ,
                                  i[4] if i else b"", r[4] if r else b"",
                                  i[5] if i else b"", r[5] if r else b""))
        except _Skip:
            pass
    return out


def _tcpdump_esp(at: _At, line: str) -> list[EspKey]:
    """'[spi@dst ]algo:secret' entries; a comma starts another SA (as on
    tcpdump's command line), or adds an 'auth:secret' to the SA before it."""
    out: list[EspKey] = []
    for part in (p.strip() for p in line.split(",")):
        if not part:
            continue
        tok = part.split(None, 1)
        if len(tok) == 1 and out and tok[0].split(":", 1)[0].lower() in TCPDUMP_AUTH:
            integ, akey = _tcpdump_auth(at, tok[0])
            prev = out.pop()
            _pair(at, prev.enc, integ)
            akey = _check_integ(at, integ, akey, "authentication key")
            out.append(EspKey(prev.protocol, prev.spi, prev.src, prev.dst, prev.enc, prev.enc_key,
                              integ, akey, source=prev.source))
            continue
        spi = dst = None
        if len(tok) == 2:
            spistr, at_sign, addr = tok[0].partition("@")
            if not at_sign:
                raise at.err("expected SPI@ADDRESS before the algorithm")
            spi = _spi(at, spistr)
            dst = _address(at, addr, "destination address")
            if dst is None:
                raise at.err("bad destination address: tcpdump needs one address after '@'")
        enc, integ, key, exact = _tcpdump_enc(at, tok[-1])
        key = _check_enc(at, enc, key, "secret", exact)
        out.append(EspKey("esp", spi, None, dst, enc, key, integ, b"", source=at.source))
    return out


def _tcpdump_include(at: _At, name: str, seen: set[str]) -> list:
    path = name
    if not os.path.isabs(path) and not os.path.exists(path):
        path = os.path.join(os.path.dirname(at.path), name)
    real = os.path.realpath(path)
    if real in seen:
        raise at.err(f"'file {_shown(name)}' includes a file already being read")
    sub = KeyStore()
    _load_one(path, sub, seen | {real}, only=("tcpdump",))
    at.store.problems.extend(sub.problems)
    at.store.files.extend(sub.files)
    return sub.esp + sub.ikev2


# --------------------------------------------------------------------------- our YAML / JSON
_ESP_FIELDS = {"protocol", "spi", "src", "dst", "enc", "enc_key", "integ", "integ_key", "esn",
               "esn_high", "mode", "encap"}
_IKEV2_FIELDS = {"ispi", "rspi", "enc", "sk_ei", "sk_er", "integ", "sk_ai", "sk_ar"}
_IKEV1_FIELDS = {"icookie", "enc_key"}


class _Node:
    """A YAML node with its line, the scalar text kept as written (so an
    unquoted 0x0011... stays hex and keeps its leading zeros)."""

    def __init__(self, node: yaml.Node, key_line: int = 0):
        self.line = node.start_mark.line + 1
        self.key_line = key_line or self.line  # where "name:" is, for a mapping value
        self.node = node

    def scalar(self) -> str | None:
        import yaml  # (imported by _compose: only YAML and JSON key files need it, 15 ms)

        if isinstance(self.node, yaml.ScalarNode):
            if self.node.tag.endswith(":null") and self.node.style is None:
                return None
            return self.node.value
        return None

    def mapping(self) -> dict[str, _Node] | None:
        import yaml

        if not isinstance(self.node, yaml.MappingNode):
            return None
        return {str(k.value): _Node(v, k.start_mark.line + 1) for k, v in self.node.value}

    def seq(self) -> list[_Node] | None:
        import yaml

        if not isinstance(self.node, yaml.SequenceNode):
            return None
        return [_Node(v) for v in self.node.value]


def _compose(at: _At, text: str, is_json: bool) -> yaml.Node:
    import yaml  # here: a Wireshark table, ip xfrm output or tcpdump secrets need no YAML parser

    if is_json:
        try:
            json.loads(text)
        except json.JSONDecodeError as e:
            at.line = e.lineno
            raise at.err(f"JSON syntax error: {e.msg}") from None
    try:
        return yaml.compose(text.replace("\t", " ") if is_json else text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        at.line = mark.line + 1 if mark else 0
        what = _shown_plain(e.problem or e.context or "cannot parse")
        if e.problem and e.context and e.context_mark and e.context_mark.line + 1 != at.line:
            what += f" ({_shown_plain(e.context)} at line {e.context_mark.line + 1})"
        raise at.err(f"{'JSON' if is_json else 'YAML'} syntax error: {what}") from None
    except yaml.YAMLError as e:
        raise at.err(f"{'JSON' if is_json else 'YAML'} syntax error: {type(e).__name__}") from None


def _shown_plain(text: str) -> str:
    s = " ".join(str(text).split())
    return "<withheld>" if _HEXISH.search(s) else s


def _text(at: _At, entry: dict[str, _Node], name: str, required: bool = False) -> str | None:
    n = entry.get(name)
    if n is None:
        if required:
            raise at.err(f"missing '{name}'")
        return None
    at.line = n.line
    v = n.scalar()
    if v is None and n.mapping() is None and n.seq() is None:
        if required:
            raise at.err(f"missing '{name}'")
        return None
    if v is None:
        raise at.err(f"'{name}' must be a single value")
    return v


def _bool(at: _At, text: str | None, name: str) -> bool | None:
    if text is None:
        return None
    t = text.strip().lower()
    if t in ("true", "yes", "on", "1"):
        return True
    if t in ("false", "no", "off", "0"):
        return False
    raise at.err(f"'{name}' must be true, false or omitted")


def _load_ours(at: _At, text: str, is_json: bool) -> list:
    at.line = 1
    root = _Node(_compose(at, text, is_json)) if text.strip() else None
    top = root.mapping() if root else None
    if top is None:
        raise at.err("expected a mapping starting with 'ipsecpcap-keys: 1'")
    ver = top.get("ipsecpcap-keys")
    if ver is None:
        raise at.err("missing 'ipsecpcap-keys: 1'")
    at.line = ver.line
    if ver.scalar() != "1":
        raise at.err(f"unsupported 'ipsecpcap-keys' version {_shown(ver.scalar())}: this version reads 1")
    for k, n in top.items():
        if k not in ("ipsecpcap-keys", "esp", "ikev2", "ikev1"):
            at.line = n.key_line
            raise at.err(f"unknown section '{_shown_plain(k)}': expected esp, ikev2 or ikev1")
    out: list = []
    for section, fields, build in (("esp", _ESP_FIELDS, _yaml_esp), ("ikev2", _IKEV2_FIELDS, _yaml_ikev2),
                                   ("ikev1", _IKEV1_FIELDS, _yaml_ikev1)):
        node = top.get(section)
        if node is None or node.scalar() in ("", None) and node.seq() is None and node.mapping() is None:
            continue
        at.line = node.line
        items = node.seq()
        if items is None:
            raise at.err(f"'{section}' must be a list")
        for item in items:
            at.line = item.line
            entry = item.mapping()
            if entry is None:
                raise at.err(f"each '{section}' entry must be a mapping")
            for k, n in entry.items():
                if k not in fields:
                    at.line = n.key_line
                    raise at.err(f"unknown field '{_shown_plain(k)}' in an '{section}' entry")
            try:
                out.append(build(at, item.line, entry))
            except _Skip:
                pass
    return out


def _yaml_esp(at: _At, line: int, e: dict[str, _Node]) -> EspKey:
    proto = (_text(at, e, "protocol") or "esp").lower()
    if proto not in ("esp", "ah"):
        raise at.err(f"bad protocol {_shown(proto)}: expected esp or ah")
    at.line = line
    spi_t = _text(at, e, "spi", required=True)
    spi = _spi(at, spi_t)
    src = _address(at, _text(at, e, "src"), "src")
    dst = _address(at, _text(at, e, "dst"), "dst")
    if proto == "ah":
        enc_name = _text(at, e, "enc") or "null"
    else:
        enc_name = _text(at, e, "enc", required=True)
    enc, exact = _any_enc(at, enc_name, "encryption algorithm")
    if proto == "ah" and enc != "null":
        raise at.err("an AH entry has no encryption: enc must be null or omitted")
    integ_t = _text(at, e, "integ")
    at.line = line
    integ = "none" if integ_t is None else _any_integ(at, integ_t, "integrity algorithm")
    at.line = e["integ"].line if "integ" in e else line
    _pair(at, enc, integ)
    if proto == "ah" and integ == "none":
        raise at.err("an AH entry needs an integrity algorithm")
    ek = _text(at, e, "enc_key")
    enc_key = _check_enc(at, enc, _hex(at, ek, "'enc_key'"), "enc_key", exact)
    ik = _text(at, e, "integ_key")
    integ_key = _check_integ(at, integ, _hex(at, ik, "'integ_key'"), "integ_key")
    esn = _bool(at, _text(at, e, "esn"), "esn")
    high_t = _text(at, e, "esn_high")
    esn_high = 0
    if high_t is not None:
        try:
            esn_high = int(high_t, 0)
        except ValueError:
            raise at.err("'esn_high' must be a number") from None
        if not 0 <= esn_high <= 0xFFFFFFFF:
            raise at.err("'esn_high' does not fit in 32 bits")
    mode = _text(at, e, "mode")
    if mode is not None and mode not in ("tunnel", "transport"):
        raise at.err(f"bad mode {_shown(mode)}: expected tunnel or transport")
    encap = None
    if "encap" in e:
        n = e["encap"]
        at.line = n.line
        ports = n.seq()
        if ports is None and n.scalar() is not None:
            ports = [p for p in re.split(r"[\s,/:]+", n.scalar()) if p]
            vals = ports
        else:
            vals = [p.scalar() for p in (ports or [])]
        try:
            nums = [int(str(v), 0) for v in vals]
        except (TypeError, ValueError):
            nums = []
        if len(nums) != 2 or not all(0 < p < 65536 for p in nums):
            raise at.err("'encap' must be two UDP ports, e.g. [4500, 4500]")
        encap = (nums[0], nums[1])
    at.line = line
    return EspKey(proto, spi, src, dst, enc, enc_key, integ, integ_key, esn=esn, encap=encap,
                  mode=mode, source=KeySource(at.path, line, at.fmt), esn_high=esn_high)


def _yaml_ikev2(at: _At, line: int, e: dict[str, _Node]) -> Ikev2Key:
    ispi = _ike_spi(at, _text(at, e, "ispi", required=True), "ispi")
    rspi = _ike_spi(at, _text(at, e, "rspi", required=True), "rspi")
    enc, exact = _any_enc(at, _text(at, e, "enc", required=True), "encryption algorithm")
    integ_t = _text(at, e, "integ")
    integ = "none" if integ_t is None else _any_integ(at, integ_t, "integrity algorithm")
    keys = {k: _hex(at, _text(at, e, k), f"'{k}'") for k in ("sk_ei", "sk_er", "sk_ai", "sk_ar")}
    at.line = line
    return _ikev2_key(at, ispi, rspi, enc, exact, integ, keys["sk_ei"], keys["sk_er"],
                      keys["sk_ai"], keys["sk_ar"])


def _yaml_ikev1(at: _At, line: int, e: dict[str, _Node]) -> Ikev1Key:
    icookie = _ike_spi(at, _text(at, e, "icookie", required=True), "icookie")
    key = _hex(at, _text(at, e, "enc_key", required=True), "'enc_key'")
    at.line = line
    if not key:
        raise at.err("'enc_key' is empty")
    if len(key) not in _IKEV1_KEY_BYTES:
        at.note(f"enc_key is {len(key)} bytes, not a DES, 3DES or AES key length (key kept)")
    return Ikev1Key(icookie, key, source=KeySource(at.path, line, at.fmt))


# --------------------------------------------------------------------------- detection and loading
_TCPDUMP_LINE = re.compile(
    r"(\|\s)?(ikev2\s+[IR]\s|file\s+\S+\Z|\S+@\S+\s+[\w.-]+:\S+|[A-Za-z0-9_.-]+:\S+(\s*,.*)?\Z)", re.I)


def _detect(first: str, text: str) -> str | None:
    s = first.strip()
    if s.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return "json" if "ipsecpcap-keys" in text[:2000] else None
        return "json" if isinstance(data, dict) and "ipsecpcap-keys" in data else None
    if re.search(r"^['\"]?ipsecpcap-keys['\"]?\s*:", text, re.M):
        return "yaml"
    if _XFRM_HEAD.match(s) or (s.startswith("$") and "xfrm" in s):
        return "xfrm"
    first_field = re.match(r'\s*"?([^",]*)"?\s*,', s)
    if first_field:
        f0 = first_field.group(1).strip()
        if f0.lower() in ("ipv4", "ipv6", "any"):
            return "esp_sa"
        if re.fullmatch(r"(0x)?[0-9a-fA-F]{16}", f0):
            return "ike_table"
    if _TCPDUMP_LINE.match(s):
        return "tcpdump"
    return None


_FORMATS = ("Wireshark esp_sa, ikev1_decryption_table or ikev2_decryption_table, ip xfrm state output, "
            "tcpdump -E secrets, or an ipsecpcap-keys YAML/JSON file")
_FMT_NAMES = {"esp_sa": "esp_sa", "ikev1": "ikev1_decryption_table", "ikev2": "ikev2_decryption_table",
              "xfrm": "xfrm", "tcpdump": "tcpdump", "yaml": "ipsecpcap", "json": "ipsecpcap"}


def _read(path: str) -> str:
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except OSError as e:
        raise KeyFileError(f"{path}: cannot read: {e.strerror or type(e).__name__}") from None
    if b"\x00" in data[:4096]:
        raise _NotKeys("binary content")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise _NotKeys("not UTF-8 text") from None


class _NotKeys(Exception):
    """The file has no recognisable key-file content."""

    def __init__(self, reason: str, line: int = 0):
        super().__init__(reason)
        self.reason, self.line = reason, line


def _content_lines(text: str) -> list[tuple[int, str]]:
    out = []
    for no, line in enumerate(text.splitlines(), 1):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        out.append((no, line.rstrip("\r\n")))
    return out


def _load_one(path: str, store: KeyStore, seen: set[str], only: tuple[str, ...] | None = None) -> int:
    text = _read(path)
    lines = _content_lines(text)
    at = _At(path, 0, "", store)
    if not lines:
        at.note("no keys in this file (only blank or comment lines)")
        store.files.append(path)
        return 0
    first_no, first = lines[0]
    fmt = _detect(first, text)
    if fmt is None or (only and fmt not in only):
        raise _NotKeys("its first line is none of the formats", first_no)
    if fmt == "ike_table":
        n = len(_uat_fields(_At(path, first_no, "", store), first))
        if n == 2:
            fmt = "ikev1"
        elif n == 8:
            fmt = "ikev2"
        else:
            at.line = first_no
            raise at.err(f"expected 2 (ikev1_decryption_table) or 8 (ikev2_decryption_table) "
                         f"comma-separated columns, found {n}")
    at.fmt = _FMT_NAMES[fmt]
    keys: list = []
    if fmt in ("yaml", "json"):
        keys = _load_ours(at, text, fmt == "json")
    elif fmt == "xfrm":
        keys = _load_xfrm(at, lines)
    elif fmt == "tcpdump":
        keys = _load_tcpdump(at, lines, seen | {os.path.realpath(path)})
    else:
        parse = {"esp_sa": _esp_sa_line, "ikev1": _ikev1_line, "ikev2": _ikev2_line}[fmt]
        for no, line in lines:
            at.line = no
            try:
                keys.append(parse(at, line))
            except _Skip:
                pass
    for k in keys:
        {EspKey: store.esp, Ikev2Key: store.ikev2, Ikev1Key: store.ikev1}[type(k)].append(k)
    store.files.append(path)
    return len(keys)


def load_key_file(path: str | os.PathLike, store: KeyStore) -> int:
    """Load one key file into ``store``; returns the number of keys added.

    Raises :class:`KeyFileError` when the file cannot be read, its format is
    not recognised, or an entry is malformed."""
    p = os.fspath(path)
    try:
        return _load_one(p, store, set())
    except _NotKeys as e:
        where = f"{p}:{e.line}" if e.line else p
        raise KeyFileError(f"{where}: unknown key file format ({e.reason}): expected {_FORMATS}") from None


def load_keys(paths: Iterable[str | os.PathLike]) -> KeyStore:
    """Load key files and directories (each file in a directory, not
    recursing; files there without recognisable key content are skipped and
    listed in ``problems``)."""
    store = KeyStore()
    for path in paths:
        p = os.fspath(path)
        if os.path.isdir(p):
            for name in sorted(os.listdir(p)):
                full = os.path.join(p, name)
                if not os.path.isfile(full):
                    continue
                before = (len(store.esp), len(store.ikev2), len(store.ikev1), len(store.problems),
                          len(store.files))
                try:
                    _load_one(full, store, set())
                except _NotKeys as e:
                    del store.esp[before[0]:], store.ikev2[before[1]:], store.ikev1[before[2]:]
                    del store.problems[before[3]:], store.files[before[4]:]
                    store.problems.append(f"{full}: skipped, not a key file ({e.reason})")
        else:
            load_key_file(p, store)
    return store
