"""What a key is, whatever file it came from.

Key files in many formats (``ipsecpcap.keys``) load into these records; the
crypto (``ipsecpcap.crypto``) and the trackers only ever see these.  Keys are
secrets: ``repr`` never shows key bytes, and everything that names a key
uses its :attr:`fingerprint`.

Algorithm names are the canonical ones of :mod:`ipsecpcap.algorithms`
without a key length (the key bytes give it): encryption ``null``,
``aes-cbc``, ``aes-ctr``, ``aes-gcm8``/``aes-gcm12``/``aes-gcm16``,
``null-aes-gmac``, ``aes-ccm8``/``aes-ccm12``/``aes-ccm16``,
``chacha20-poly1305``, ``3des-cbc``, ``des-cbc``; integrity ``none``,
``hmac-md5-96``, ``hmac-sha1-96``, ``hmac-sha2-256-128``,
``hmac-sha2-384-192``, ``hmac-sha2-512-256``, ``aes-xcbc-96``,
``aes-cmac-96``, ``hmac-md5-128``, ``hmac-sha1-160`` (IKEv2 tables),
``hmac-sha2-256-96`` (the pre-RFC 4868 truncation some old peers used),
``hmac-ripemd160-96`` (RFC 2857), and ``any-<bits>`` (an ICV of that many
bits that is skipped, never verified: Wireshark's "ANY 96 bit
authentication [no checking]").
For AES-GCM, GMAC, CCM, CTR and ChaCha20-Poly1305 the key bytes end with
the salt/nonce (4 bytes; 3 for CCM), as Wireshark and ``ip xfrm`` write them.
An empty integrity key (``integ_key``, ``sk_ai``/``sk_ar``) under an
integrity algorithm other than ``none`` means the key is unknown (tcpdump's
``-hmac96``): the ICV is skipped, never checked against an empty key.  An
empty ``sk_ei``/``sk_er`` means that direction's keys are unknown.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


def fingerprint(*secrets: bytes) -> str:
    """A short, stable name for key material that does not reveal it."""
    h = hashlib.sha256(b"ipsecpcap-key\x00" + b"\x00".join(secrets)).hexdigest()
    return f"k:{h[:12]}"


@dataclass(frozen=True, slots=True)
class KeySource:
    path: str  # file name as given
    line: int  # 1-based line (or first line of a multi-line entry); 0 when not line-based
    format: str  # esp_sa, ikev1_decryption_table, ikev2_decryption_table, xfrm, tcpdump, ipsecpcap

    def __str__(self) -> str:
        return f"{self.path}:{self.line}" if self.line else self.path


@dataclass(frozen=True, slots=True)
class EspKey:
    """Keys of one ESP or AH SA direction (or a wildcard for several)."""

    protocol: str  # "esp" | "ah"
    spi: int | None  # None: any SPI (matched by trial verification)
    src: str | None  # address or CIDR prefix; None: any
    dst: str | None
    enc: str  # canonical name; "null" for AH
    enc_key: bytes = field(repr=False)
    integ: str  # canonical name; "none" for AEAD ciphers
    integ_key: bytes = field(repr=False)
    esn: bool | None = None  # extended sequence numbers; None: unknown (inferred on wrap)
    encap: tuple[int, int] | None = None  # UDP encapsulation ports (xfrm "encap espinudp")
    mode: str | None = None  # "tunnel" | "transport" | None
    source: KeySource | None = None
    esn_high: int = 0  # ESN high-order 32 bits at the first packet (Wireshark esp_sa "ESN High Bits")

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.enc.encode(), self.enc_key, self.integ.encode(), self.integ_key)


@dataclass(frozen=True, slots=True)
class Ikev2Key:
    """IKEv2 SA keys (RFC 7296 2.14), as in Wireshark's ikev2_decryption_table."""

    ispi: bytes  # 8 bytes
    rspi: bytes  # 8 bytes
    enc: str  # canonical name as above
    sk_ei: bytes = field(repr=False)  # salt included for AEAD/CTR
    sk_er: bytes = field(repr=False)
    integ: str  # "none" for AEAD
    sk_ai: bytes = field(repr=False)
    sk_ar: bytes = field(repr=False)
    source: KeySource | None = None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.sk_ei, self.sk_er, self.sk_ai, self.sk_ar)


@dataclass(frozen=True, slots=True)
class Ikev1Key:
    """IKEv1 phase-1 encryption key (RFC 2409 appendix B: the key derived
    from SKEYID_e), keyed by the initiator cookie, as in Wireshark's
    ikev1_decryption_table."""

    icookie: bytes  # 8 bytes
    enc_key: bytes = field(repr=False)
    source: KeySource | None = None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.enc_key)


@dataclass(slots=True)
class KeyStore:
    """Everything loaded from the key files given."""

    esp: list[EspKey] = field(default_factory=list)  # ESP and AH
    ikev2: list[Ikev2Key] = field(default_factory=list)
    ikev1: list[Ikev1Key] = field(default_factory=list)
    # entries that could not be used, one line each (e.g. an unknown algorithm), never with key bytes
    problems: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.esp) + len(self.ikev2) + len(self.ikev1)
