"""The ESP/AH algorithm registry: sizes as data, keyed by canonical name.

Like scapy's ``CRYPT_ALGOS`` / ``AUTH_ALGOS`` (``scapy/layers/ipsec.py``),
every algorithm is one row of data: the sizes an ESP packet is cut by and
the ``cryptography`` primitive that does the work.  The names are the
canonical ones of :mod:`ipsecpcap.keymodel` (no key length in the name: the
key bytes give it).  Key material for CTR, GCM, GMAC, CCM and
ChaCha20-Poly1305 ends with the salt (4 bytes; 3 for CCM), as Wireshark's
``esp_sa`` and ``ip xfrm`` write it.

Besides the rows, this module holds the integrity engines shared by ESP and
AH (:func:`new_mac`): HMAC with precomputed inner/outer states, AES-XCBC-MAC
(RFC 3566, written here over AES-ECB) and AES-CMAC (RFC 4494, cryptography's
CMAC).  An engine returns the ICV already truncated to the algorithm's
length.

``any-64`` ... ``any-256`` are not IANA algorithms: they stand for an ICV of
that length that cannot be checked because its key is unknown (Wireshark's
"ANY 96 bit authentication [no checking]", tcpdump's ``-E ...-hmac96``).
ESP cuts the ICV off and decrypts, and says the result is unauthenticated.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cache

# The rows name their cryptography classes, which are imported on first use: the sizes are
# wanted by every analysis (lifecycle.py), the ciphers only with keys, and importing them
# took 7 ms of each start.  AESGCM, AESCCM, ChaCha20Poly1305 and TripleDES are still
# importable from here (module __getattr__ below).
AES_KEYS = (16, 24, 32)


@cache
def _primitives() -> dict:
    from cryptography.hazmat.primitives.ciphers import algorithms
    from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305

    try:  # cryptography >= 43 moved TripleDES to "decrepit" (removed from the old place in 48)
        from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
    except ImportError:  # pragma: no cover - older cryptography
        TripleDES = getattr(algorithms, "TripleDES", None)
    return {"AES": algorithms.AES, "TripleDES": TripleDES, "AESGCM": AESGCM, "AESCCM": AESCCM,
            "ChaCha20Poly1305": ChaCha20Poly1305}


def __getattr__(name):  # PEP 562: the cryptography classes this module used to import at the top
    if name in ("AESGCM", "AESCCM", "ChaCha20Poly1305", "TripleDES"):
        return _primitives()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass(frozen=True, slots=True)
class EncAlgo:
    """An ESP encryption (or combined-mode) algorithm."""

    name: str
    mode: str  # null | cbc | ctr | gcm | gmac | ccm | chacha20-poly1305
    cipher_name: str | None  # the cryptography block cipher class (AES, TripleDES) or None
    aead_name: str | None  # the cryptography AEAD class (AESGCM, AESCCM, ChaCha20Poly1305) or None
    block: int  # cipher block size; the ciphertext is a multiple of it (1: stream or combined mode)
    iv_len: int  # IV on the wire, after the sequence number
    salt_len: int  # bytes at the end of the key material that are the salt / nonce
    icv_len: int  # ICV of a combined mode (0: integrity comes from the integrity algorithm)
    key_lens: tuple[int, ...]  # allowed key lengths without the salt
    aead: bool
    rfc: str

    @property
    def cipher(self):
        """The cryptography block cipher class (algorithms.AES, TripleDES), or None."""
        return _primitives()[self.cipher_name] if self.cipher_name else None

    @property
    def aead_class(self):
        """The cryptography AEAD class (AESGCM, AESCCM, ChaCha20Poly1305), or None."""
        return _primitives()[self.aead_name] if self.aead_name else None


@dataclass(frozen=True, slots=True)
class IntegAlgo:
    """An ESP/AH integrity algorithm."""

    name: str
    kind: str  # hmac | xcbc | cmac | none | unchecked
    hash: str | None  # hashlib name for HMACs
    icv_len: int  # bytes on the wire (truncated output)
    key_lens: tuple[int, ...] | None  # None: any length (HMAC, RFC 2104 section 3)
    rfc: str

    @property
    def checked(self) -> bool:
        return self.kind in ("hmac", "xcbc", "cmac")


def _aes(name, mode, iv, salt, icv, aead_class, rfc, aead=True):
    return EncAlgo(name, mode, "AES", aead_class, 1, iv, salt, icv, AES_KEYS, aead, rfc)


ENC: dict[str, EncAlgo] = {a.name: a for a in (
    EncAlgo("null", "null", None, None, 1, 0, 0, 0, (0,), False, "RFC 2410"),
    EncAlgo("aes-cbc", "cbc", "AES", None, 16, 16, 0, 0, AES_KEYS, False, "RFC 3602"),
    # RFC 3686: counter block = nonce (last 4 bytes of the key material) | IV | 1
    _aes("aes-ctr", "ctr", 8, 4, 0, None, "RFC 3686", aead=False),
    # RFC 4106: nonce = salt (4) | IV (8)
    _aes("aes-gcm8", "gcm", 8, 4, 8, "AESGCM", "RFC 4106"),
    _aes("aes-gcm12", "gcm", 8, 4, 12, "AESGCM", "RFC 4106"),
    _aes("aes-gcm16", "gcm", 8, 4, 16, "AESGCM", "RFC 4106"),
    # RFC 4543: GMAC over SPI|seq|IV|payload|trailer as AAD, nothing encrypted
    _aes("null-aes-gmac", "gmac", 8, 4, 16, "AESGCM", "RFC 4543"),
    # RFC 4309: nonce = salt (3) | IV (8)
    _aes("aes-ccm8", "ccm", 8, 3, 8, "AESCCM", "RFC 4309"),
    _aes("aes-ccm12", "ccm", 8, 3, 12, "AESCCM", "RFC 4309"),
    _aes("aes-ccm16", "ccm", 8, 3, 16, "AESCCM", "RFC 4309"),
    # RFC 7634: nonce = salt (4) | IV (8)
    EncAlgo("chacha20-poly1305", "chacha20-poly1305", None, "ChaCha20Poly1305", 1, 8, 4, 16, (32,),
            True, "RFC 7634"),
    EncAlgo("3des-cbc", "cbc", "TripleDES", None, 8, 8, 0, 0, (24,), False, "RFC 2451"),
    # single DES as TripleDES with the key repeated three times (EDE with K1=K2=K3)
    EncAlgo("des-cbc", "cbc", "TripleDES", None, 8, 8, 0, 0, (8,), False, "RFC 2405"),
)}

INTEG: dict[str, IntegAlgo] = {a.name: a for a in (
    IntegAlgo("none", "none", None, 0, (0,), "RFC 4303 3.2"),
    IntegAlgo("hmac-md5-96", "hmac", "md5", 12, None, "RFC 2403"),
    IntegAlgo("hmac-sha1-96", "hmac", "sha1", 12, None, "RFC 2404"),
    IntegAlgo("hmac-sha2-256-128", "hmac", "sha256", 16, None, "RFC 4868"),
    IntegAlgo("hmac-sha2-384-192", "hmac", "sha384", 24, None, "RFC 4868"),
    IntegAlgo("hmac-sha2-512-256", "hmac", "sha512", 32, None, "RFC 4868"),
    IntegAlgo("aes-xcbc-96", "xcbc", None, 12, (16,), "RFC 3566"),
    IntegAlgo("aes-cmac-96", "cmac", None, 12, (16,), "RFC 4494"),
    IntegAlgo("hmac-md5-128", "hmac", "md5", 16, None, "RFC 4595 (IKEv2 integ 6)"),
    IntegAlgo("hmac-sha1-160", "hmac", "sha1", 20, None, "RFC 4595 (IKEv2 integ 7)"),
    # draft-ietf-ipsec-ciph-sha-256-00 truncation, used by old Linux/FreeS/WAN peers
    IntegAlgo("hmac-sha2-256-96", "hmac", "sha256", 12, None, "draft-ietf-ipsec-ciph-sha-256-00"),
    *(IntegAlgo(f"any-{bits}", "unchecked", None, bits // 8, None, "ICV present, key unknown")
      for bits in (64, 96, 128, 160, 192, 256)),
)}


def integ_algo(name) -> IntegAlgo | None:
    """The row for an integrity name; ``any-<bits>`` for any whole number of bytes up to 512 bits."""
    algo = INTEG.get(name)
    if algo is None and isinstance(name, str) and name.startswith("any-") and name[4:].isdigit():
        bits = int(name[4:])
        if bits % 8 == 0 and 0 < bits <= 512:
            algo = IntegAlgo(name, "unchecked", None, bits // 8, None, "ICV present, key unknown")
    return algo


def enc_problem(name: str, material: bytes) -> str | None:
    """Why this encryption key cannot be used (one line, no key bytes), or None."""
    algo = ENC.get(name)
    if algo is None:
        return f"unknown encryption algorithm {name!r}"
    if algo.mode in ("cbc",) and algo.cipher is None:
        return f"{name}: not available in this cryptography build"
    klen = len(material) - algo.salt_len
    if klen not in algo.key_lens:
        want = "/".join(str(k + algo.salt_len) for k in algo.key_lens)
        return f"{name}: key material of {len(material)} bytes, expected {want}" + (
            f" (key + {algo.salt_len}-byte salt)" if algo.salt_len else "")
    return None


def integ_problem(name: str, key: bytes) -> str | None:
    """Why this integrity key cannot be used (one line, no key bytes), or None."""
    algo = integ_algo(name)
    if algo is None:
        return f"unknown integrity algorithm {name!r}"
    if algo.key_lens is not None and len(key) not in algo.key_lens:
        if algo.kind == "none":
            return None  # a key given for "none" is ignored
        return f"{name}: key of {len(key)} bytes, expected {'/'.join(map(str, algo.key_lens))}"
    if algo.kind == "hmac" and not key:
        return f"{name}: empty key"
    return None


def split_key(algo: EncAlgo, material: bytes) -> tuple[bytes, bytes]:
    """(cipher key, salt) of ESP key material (the salt is at the end)."""
    if algo.salt_len:
        return bytes(material[:-algo.salt_len]), bytes(material[-algo.salt_len:])
    return bytes(material), b""


# ---------------------------------------------------------------------------------- integrity


class Mac:
    """An integrity engine: ``icv(*parts)`` is the truncated ICV of the parts' concatenation."""

    __slots__ = ("icv_len",)

    def icv(self, *parts) -> bytes:  # pragma: no cover - interface
        raise NotImplementedError


class _Hmac(Mac):
    """RFC 2104 HMAC with the inner and outer pads hashed once (copied per packet)."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, hash_name: str, key: bytes, icv_len: int):
        proto = hashlib.new(hash_name)
        block = proto.block_size
        if len(key) > block:
            key = hashlib.new(hash_name, key).digest()
        key = key.ljust(block, b"\x00")
        self._inner = hashlib.new(hash_name, bytes(b ^ 0x36 for b in key))
        self._outer = hashlib.new(hash_name, bytes(b ^ 0x5C for b in key))
        self.icv_len = icv_len

    def pads(self) -> tuple:
        """(inner, outer): the hash objects with the key pads absorbed, for a loop that
        computes the HMAC inline (copy each, as :meth:`icv` does; never update them)."""
        return self._inner, self._outer

    def icv(self, *parts) -> bytes:
        h = self._inner.copy()
        for p in parts:
            h.update(p)
        o = self._outer.copy()
        o.update(h.digest())
        return o.digest()[:self.icv_len]


def _xor16(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(16, "big")


class _AesXcbc(Mac):
    """AES-XCBC-MAC (RFC 3566 section 4) over AES-ECB/CBC of ``cryptography``.

    K1, K2, K3 = AES-K(0x01..01), AES-K(0x02..02), AES-K(0x03..03).  The MAC
    is CBC-MAC under K1 of the message whose last block is XORed with K2 when
    it is complete, or padded with 0x80 00.. and XORed with K3 otherwise (an
    empty message is one incomplete block).  The CBC chain runs in one call:
    CBC-encrypting M[1..n-1] | (M[n]' ^ Kx) under K1 with a zero IV ends in
    E(K1, M[n]' ^ Kx ^ E[n-1]), which is the MAC.
    """

    __slots__ = ("_k1", "_k2", "_k3", "full")

    def __init__(self, key: bytes, icv_len: int = 12):
        from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

        enc = Cipher(algorithms.AES(bytes(key)), modes.ECB()).encryptor()
        k = enc.update(b"\x01" * 16 + b"\x02" * 16 + b"\x03" * 16)
        self._k1 = algorithms.AES(k[:16])
        self._k2, self._k3 = k[16:32], k[32:48]
        self.icv_len = icv_len

    def mac(self, msg: bytes) -> bytes:
        """The full 128-bit AES-XCBC-MAC."""
        n = len(msg)
        rem = n % 16
        if n and not rem:
            head, last = msg[:-16], _xor16(msg[-16:], self._k2)
        else:
            head, last = msg[:n - rem], _xor16(msg[n - rem:] + b"\x80" + b"\x00" * (15 - rem), self._k3)
        from cryptography.hazmat.primitives.ciphers import Cipher, modes

        out = Cipher(self._k1, modes.CBC(bytes(16))).encryptor().update(head + last)
        return out[-16:]

    def icv(self, *parts) -> bytes:
        return self.mac(b"".join(parts))[:self.icv_len]


class _AesCmac(Mac):
    """AES-CMAC (RFC 4493) truncated to 96 bits (RFC 4494)."""

    __slots__ = ("_base",)

    def __init__(self, key: bytes, icv_len: int = 12):
        from cryptography.hazmat.primitives import cmac
        from cryptography.hazmat.primitives.ciphers import algorithms

        self._base = cmac.CMAC(algorithms.AES(bytes(key)))
        self.icv_len = icv_len

    def icv(self, *parts) -> bytes:
        c = self._base.copy()
        for p in parts:
            c.update(p)
        return c.finalize()[:self.icv_len]


def new_mac(algo: IntegAlgo, key: bytes) -> Mac | None:
    """The integrity engine for a checked algorithm; None for none/unchecked.

    Raises ValueError for a key the algorithm cannot take (see
    :func:`integ_problem`, which says why without raising)."""
    problem = integ_problem(algo.name, key)
    if problem:
        raise ValueError(problem)
    if algo.kind == "hmac":
        return _Hmac(algo.hash, bytes(key), algo.icv_len)
    if algo.kind == "xcbc":
        return _AesXcbc(key, algo.icv_len)
    if algo.kind == "cmac":
        return _AesCmac(key, algo.icv_len)
    return None


def aes_xcbc_mac(key: bytes, msg: bytes) -> bytes:
    """The full 16-byte AES-XCBC-MAC of ``msg`` (RFC 3566 test vectors)."""
    return _AesXcbc(key).mac(bytes(msg))


__all__ = ["ENC", "INTEG", "EncAlgo", "IntegAlgo", "Mac", "integ_algo", "new_mac", "split_key", "enc_problem",
           "integ_problem", "aes_xcbc_mac", "AESGCM", "AESCCM", "ChaCha20Poly1305", "TripleDES"]
