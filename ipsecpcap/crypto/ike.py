"""Open encrypted IKE messages: IKEv2 SK/SKF payloads and IKEv1 bodies.

IKEv2 (RFC 7296 3.14): :func:`ikev2_open` finds the SK (46) or SKF (53,
RFC 7383 2.5) payload, verifies the ICV (or the AEAD tag, RFC 5282 /
RFC 7634) and only then decrypts and strips the padding.  A pure function.

IKEv1 (RFC 2409 appendix B): there is no ICV, and the CBC IV of a message
depends on the messages before it, so :class:`Ikev1Decryptor` keeps that
state for one IKE SA; the only check is that the plaintext is an ISAKMP
payload chain followed by padding that fits.

Algorithm names are the canonical ones of :mod:`ipsecpcap.keymodel`.  One
more integrity name exists for Wireshark's "ANY 96-bits of Authentication
[No Checking]": ``any-96`` (a 12-byte ICV that is skipped, not verified;
``any-<bits>`` in general).  The small cipher and integrity tables here are
IKE's alone on purpose (sizes as data, scapy-style); ESP has its own
registry, and the two can be folded together later.

Results are :class:`IkeOpened` values; nothing here raises on any input,
and no result or detail ever carries key bytes.
"""
from __future__ import annotations

import hashlib
import hmac
import struct
from collections import OrderedDict
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, ChaCha20Poly1305

from ..dissectors.ikev2 import PAYLOAD_SK, PAYLOAD_SKF, parse_ikev2_inner
from ..dissectors.isakmp import (
    FLAG_ENCRYPTION,
    IKE_HEADER_LEN,
    Problems,
    iter_chain,
    message_bounds,
    parse_header,
    parse_isakmp_inner,
)
from ..keymodel import Ikev1Key, Ikev2Key

__all__ = ["IkeOpened", "Ikev1Decryptor", "ikev2_open", "aes_xcbc_mac"]

OK = "ok"
INTEGRITY_FAILURE = "integrity_failure"
BAD_PADDING = "bad_padding"
BAD_LENGTH = "bad_length"
UNSUPPORTED = "unsupported"
NO_KEY = "no_key"
ICV_NOT_CHECKED = "ICV not checked"


@dataclass(frozen=True, slots=True)
class IkeOpened:
    status: str  # "ok" | "integrity_failure" | "bad_padding" | "bad_length" | "unsupported" | "no_key"
    first_payload: int | None  # SK's next-payload field (inner first payload); for SKF fragment 1 only (RFC 7383 2.5)
    plaintext: bytes | None  # decrypted inner payload chain, padding removed
    detail: str = ""  # one line, never key bytes


def _fail(status: str, detail: str) -> IkeOpened:
    return IkeOpened(status, None, None, detail)


# ------------------------------------------------------------------ ciphers
@dataclass(frozen=True, slots=True)
class _Cipher:
    """One IKEv2 encryption transform, its sizes as data (bytes)."""

    mode: str  # "aes-cbc" | "des-cbc" (DES and 3DES) | "ctr" | "gcm" | "ccm" | "chacha" | "null"
    key_sizes: tuple[int, ...]  # without the salt
    salt: int  # taken from the end of SK_e (RFC 5282 7.1, RFC 5930 2, RFC 7634 2)
    iv: int  # the IV in front of the ciphertext
    block: int  # the ciphertext is a multiple of this (RFC 7296 3.14)
    icv: int = 0  # AEAD tag length; 0 when a separate integrity transform protects the message

    @property
    def aead(self) -> bool:
        return self.mode in ("gcm", "ccm", "chacha")


_AES = (16, 24, 32)
_IKEV2_CIPHERS: dict[str, _Cipher] = {
    "null": _Cipher("null", (0,), 0, 0, 1),  # RFC 2410: no key, no IV
    "des-cbc": _Cipher("des-cbc", (8,), 0, 8, 8),  # RFC 2405
    "3des-cbc": _Cipher("des-cbc", (24,), 0, 8, 8),  # RFC 2451
    "aes-cbc": _Cipher("aes-cbc", _AES, 0, 16, 16),  # RFC 3602
    "aes-ctr": _Cipher("ctr", _AES, 4, 8, 1),  # RFC 5930 / RFC 3686: 4-byte nonce
    "aes-gcm8": _Cipher("gcm", _AES, 4, 8, 1, 8),  # RFC 5282: 4-byte salt, 8-byte IV
    "aes-gcm12": _Cipher("gcm", _AES, 4, 8, 1, 12),
    "aes-gcm16": _Cipher("gcm", _AES, 4, 8, 1, 16),
    "aes-ccm8": _Cipher("ccm", _AES, 3, 8, 1, 8),  # RFC 5282: 3-byte salt, 8-byte IV
    "aes-ccm12": _Cipher("ccm", _AES, 3, 8, 1, 12),
    "aes-ccm16": _Cipher("ccm", _AES, 3, 8, 1, 16),
    "chacha20-poly1305": _Cipher("chacha", (32,), 4, 8, 1, 16),  # RFC 7634
}

# IKEv2 integrity: (MAC, key length or None for any, ICV length).  HMAC keys
# are the hash's output length (RFC 2104 takes any); XCBC and CMAC keys are
# 16 bytes (RFC 3566 4, RFC 4494 2).
_IKEV2_INTEGRITY: dict[str, tuple[str | None, int | None, int]] = {
    "none": (None, None, 0),
    "hmac-md5-96": ("md5", None, 12),  # RFC 2403
    "hmac-sha1-96": ("sha1", None, 12),  # RFC 2404
    "hmac-md5-128": ("md5", None, 16),  # RFC 4595
    "hmac-sha1-160": ("sha1", None, 20),  # RFC 4595
    "hmac-sha2-256-96": ("sha256", None, 12),  # draft-ietf-ipsec-ciph-sha-256-00 truncation
    "hmac-sha2-256-128": ("sha256", None, 16),  # RFC 4868
    "hmac-sha2-384-192": ("sha384", None, 24),
    "hmac-sha2-512-256": ("sha512", None, 32),
    "aes-xcbc-96": ("xcbc", 16, 12),  # RFC 3566
    "aes-cmac-96": ("cmac", 16, 12),  # RFC 4494
}


def _integrity(name: str) -> tuple[str | None, int | None, int] | None:
    if name in _IKEV2_INTEGRITY:
        return _IKEV2_INTEGRITY[name]
    # "any-96": Wireshark's "ANY 96-bits of Authentication [No Checking]"
    if name.startswith("any-") and name[4:].isdigit() and int(name[4:]) % 8 == 0:
        return ("unchecked", None, int(name[4:]) // 8)
    return None


def aes_xcbc_mac(key: bytes, data: bytes) -> bytes:
    """AES-XCBC-MAC (RFC 3566 4), the full 16-byte MAC; callers truncate."""
    ecb = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    k1, k2, k3 = (ecb.update(bytes([n]) * 16) for n in (1, 2, 3))
    # every block but the last is plain CBC-MAC under K1
    split = (len(data) - 1) // 16 * 16 if data else 0
    head, last = data[:split], data[split:]
    if len(last) == 16:
        last = bytes(a ^ b for a, b in zip(last, k2))
    else:  # 10* padding, then K3 (RFC 3566 4, step 3b)
        last = last + b"\x80" + b"\x00" * (15 - len(last))
        last = bytes(a ^ b for a, b in zip(last, k3))
    cbc = Cipher(algorithms.AES(k1), modes.CBC(b"\x00" * 16)).encryptor()
    return cbc.update(head + last)[-16:]


def _mac(kind: str, key: bytes, data: bytes) -> bytes:
    if kind == "xcbc":
        return aes_xcbc_mac(key, data)
    if kind == "cmac":
        c = cmac.CMAC(algorithms.AES(key))
        c.update(data)
        return c.finalize()
    return hmac.new(key, data, kind).digest()


def _cbc_decrypt(key: bytes, iv: bytes, ciphertext: bytes, des: bool) -> bytes:
    # single DES is 3DES with K1 = K2 = K3
    algo = TripleDES(key * 3 if len(key) == 8 else key) if des else algorithms.AES(key)
    d = Cipher(algo, modes.CBC(iv)).decryptor()
    return d.update(ciphertext) + d.finalize()


# -------------------------------------------------------------------- IKEv2
def _find_encrypted(message: bytes) -> tuple[int, int, int, bytes] | IkeOpened:
    """(offset, type, next payload, body) of the SK/SKF payload, or why not."""
    hdr = parse_header(message)
    problems = Problems()
    end, declared_end = message_bounds(message, hdr, "ikev2", problems)
    offset = IKE_HEADER_LEN
    for el in iter_chain(message, IKE_HEADER_LEN, end, declared_end, hdr.next_payload, "ikev2.payloads",
                         lambda i, _t: f"ikev2.payload[{i}]", problems,
                         stop_types=frozenset((PAYLOAD_SK, PAYLOAD_SKF))):
        if el.type in (PAYLOAD_SK, PAYLOAD_SKF):
            if el.clipped:
                return _fail(BAD_LENGTH, f"the encrypted payload says {el.length} bytes, {end - offset} captured")
            return offset, el.type, el.next, el.body
        offset += el.length
    return _fail(UNSUPPORTED, "no SK or SKF payload")


def ikev2_open(key: Ikev2Key, message: bytes, from_initiator: bool) -> IkeOpened:
    """Verify and decrypt the SK or SKF payload of one IKEv2 message.

    ``message`` runs from the IKE header (any RFC 3948 non-ESP marker
    stripped) to the end of the message; ``from_initiator`` picks SK_ei/SK_ai
    (the original initiator sent it: the header's I flag, RFC 7296 3.1), else
    SK_er/SK_ar.  Never raises.
    """
    message = bytes(message)
    cipher = _IKEV2_CIPHERS.get(key.enc)
    if cipher is None:
        return _fail(UNSUPPORTED, f"encryption {key.enc!r}")
    integ = ("aead", None, cipher.icv) if cipher.aead else _integrity(key.integ)
    if integ is None:
        return _fail(UNSUPPORTED, f"integrity {key.integ!r}")
    mac, mac_key_len, icv_len = integ

    if len(message) < IKE_HEADER_LEN:
        return _fail(BAD_LENGTH, f"{len(message)} bytes, the IKE header needs {IKE_HEADER_LEN}")
    if (message[0:8], message[8:16]) != (key.ispi, key.rspi):
        return _fail(NO_KEY, f"key is for IKE SA {key.ispi.hex()}/{key.rspi.hex()}, "
                             f"message is {message[0:8].hex()}/{message[8:16].hex()}")
    found = _find_encrypted(message)
    if isinstance(found, IkeOpened):
        return found
    offset, ptype, inner_next, body = found

    sk_e = key.sk_ei if from_initiator else key.sk_er
    sk_a = key.sk_ai if from_initiator else key.sk_ar
    enc_key, salt = sk_e[: len(sk_e) - cipher.salt], sk_e[len(sk_e) - cipher.salt :]
    if len(sk_e) < cipher.salt or len(enc_key) not in cipher.key_sizes:
        if not sk_e:
            return _fail(NO_KEY, f"no SK_e{'i' if from_initiator else 'r'}")
        return _fail(UNSUPPORTED, f"{key.enc} with a {len(sk_e)}-byte SK_e")
    if mac not in (None, "aead", "unchecked"):
        if not sk_a:
            return _fail(NO_KEY, f"no SK_a{'i' if from_initiator else 'r'}")
        if mac_key_len is not None and len(sk_a) != mac_key_len:
            return _fail(UNSUPPORTED, f"{key.integ} with a {len(sk_a)}-byte SK_a")

    # RFC 7296 3.14: IV, Encrypted IKE Payloads, Padding, Pad Length, ICV;
    # RFC 7383 2.5: SKF puts Fragment Number (2) and Total Fragments (2) first
    head = 4 if ptype == PAYLOAD_SKF else 0
    fragment = None
    if ptype == PAYLOAD_SKF:
        if len(body) < 4:
            return _fail(BAD_LENGTH, "SKF payload without fragment number and total")
        fragment = struct.unpack_from("!HH", body)
    start = offset + 4 + head  # the IV's first byte
    sk_end = offset + 4 + len(body)
    ct_len = len(body) - head - cipher.iv - icv_len
    if ct_len < 1 or ct_len % cipher.block:
        return _fail(BAD_LENGTH, f"{len(body) - head} bytes after the payload header: IV {cipher.iv} + "
                                 f"ICV {icv_len} + ciphertext (a multiple of {cipher.block}, at least 1)")
    iv = message[start : start + cipher.iv]
    ciphertext = message[start + cipher.iv : sk_end - icv_len]
    icv = message[sk_end - icv_len : sk_end]

    detail = ""
    if cipher.aead:
        # RFC 5282 5.1: AAD = IKE header through the end of the SK generic
        # header (RFC 7383 2.5.2: SKF's Fragment Number and Total Fragments too);
        # nonce = salt | IV
        aad = message[:start]
        nonce = salt + iv
        try:
            if cipher.mode == "gcm":
                d = Cipher(algorithms.AES(enc_key), modes.GCM(nonce, icv, min_tag_length=len(icv))).decryptor()
                d.authenticate_additional_data(aad)
                padded = d.update(ciphertext) + d.finalize()
            elif cipher.mode == "ccm":
                padded = AESCCM(enc_key, tag_length=len(icv)).decrypt(nonce, ciphertext + icv, aad)
            else:
                padded = ChaCha20Poly1305(enc_key).decrypt(nonce, ciphertext + icv, aad)
        except InvalidTag:
            return _fail(INTEGRITY_FAILURE, f"{key.enc} tag does not verify")
    else:
        # RFC 7296 3.14: the ICV covers the message from the first byte of the
        # header to the last byte of the encrypted payload, ICV excluded
        if mac is None:
            detail = "no integrity transform"
        elif mac == "unchecked":
            detail = ICV_NOT_CHECKED
        else:
            expected = _mac(mac, sk_a, message[: sk_end - icv_len])[:icv_len]
            if not hmac.compare_digest(expected, icv):
                return _fail(INTEGRITY_FAILURE, f"{key.integ} ICV does not verify")
        if cipher.mode in ("aes-cbc", "des-cbc"):
            padded = _cbc_decrypt(enc_key, iv, ciphertext, des=cipher.mode == "des-cbc")
        elif cipher.mode == "ctr":
            # RFC 3686 4 / RFC 5930 2: counter block = nonce | IV | 32-bit block counter from 1
            d = Cipher(algorithms.AES(enc_key), modes.CTR(salt + iv + b"\x00\x00\x00\x01")).decryptor()
            padded = d.update(ciphertext) + d.finalize()
        else:  # null
            padded = ciphertext

    # RFC 7296 3.14: the last byte is the Pad Length; the padding may hold any value
    pad_len = padded[-1]
    if pad_len + 1 > len(padded):
        return _fail(BAD_PADDING, f"pad length {pad_len} in {len(padded)} bytes of plaintext")
    plaintext = padded[: len(padded) - pad_len - 1]
    first = inner_next if fragment is None or fragment[0] == 1 else None
    if detail and fragment is None:
        # nothing vouched for this plaintext: it must at least parse
        _, anomalies = parse_ikev2_inner(inner_next, plaintext)
        if anomalies:
            return _fail(BAD_PADDING, f"{detail}, and the plaintext is no payload chain ({anomalies[0].kind})")
    return IkeOpened(OK, first, plaintext, detail)


# -------------------------------------------------------------------- IKEv1
# RFC 2409 appendix A: the phase-1 ciphers, (key sizes, block size)
_V1_CIPHERS = {"des-cbc": ((8,), 8), "3des-cbc": ((24,), 8), "aes-cbc": (_AES, 16)}
# RFC 2409 appendix A hash algorithms (and RFC 4868 for SHA-2)
_V1_HASHES = {"md5": "md5", "sha1": "sha1", "sha2-256": "sha256", "sha2-384": "sha384", "sha2-512": "sha512"}


def _remember(recent: OrderedDict, key, value, limit: int) -> None:
    recent[key] = value
    recent.move_to_end(key)
    if len(recent) > limit:
        recent.popitem(last=False)


class Ikev1Decryptor:
    """Stateful per IKE SA (RFC 2409 appendix B): phase-1 IV = hash(g^xi | g^xr)
    truncated to the block size; each following phase-1 message's IV is the
    last ciphertext block of the previous encrypted message; phase-2 /
    informational IV for a new message ID = hash(last phase-1 CBC block |
    M-ID) truncated, then chained per message ID.

    Messages are fed in capture order.  A retransmission (the same bytes
    again) gets the first result back and leaves the IV chain alone.  The
    chain follows the ciphertext, not the plaintext, so a message that does
    not decrypt still moves it on.
    """

    # retransmissions and exchanges remembered: both come seconds apart, and a
    # long-lived SA (DPD every few seconds) must not grow without bound
    _RECENT = 256

    def __init__(self, key: Ikev1Key, enc: str, key_bits: int | None, hash_name: str, gxi: bytes, gxr: bytes):
        self.icookie = key.icookie
        self._problem: tuple[str, str] | None = None
        self._key = b""
        self._des = enc in ("des-cbc", "3des-cbc")
        sizes, self.block = _V1_CIPHERS.get(enc, ((), 16))
        self._hash = _V1_HASHES.get(hash_name)
        if not sizes:
            self._problem = (UNSUPPORTED, f"encryption {enc!r}")
        elif self._hash is None:
            self._problem = (UNSUPPORTED, f"hash {hash_name!r}")
        elif not key.enc_key:
            self._problem = (NO_KEY, "no encryption key")
        else:
            # RFC 2409 appendix B: the key is the first bits of SKEYID_e (or
            # its expansion); Wireshark's table holds it at the cipher's size
            want = key_bits // 8 if key_bits else (len(key.enc_key) if enc == "aes-cbc" else sizes[0])
            if want not in sizes or len(key.enc_key) < want:
                self._problem = (UNSUPPORTED, f"{enc} with a {len(key.enc_key)}-byte key for {want * 8} bits")
            else:
                self._key = key.enc_key[:want]
        self._phase1_iv = self._digest(bytes(gxi) + bytes(gxr)) if self._hash else b""
        self._mid_iv: OrderedDict[int, bytes] = OrderedDict()
        self._seen: OrderedDict[bytes, IkeOpened] = OrderedDict()

    def _digest(self, data: bytes) -> bytes:
        return hashlib.new(self._hash, data).digest()[: self.block]

    def open(self, message: bytes) -> IkeOpened:
        """Decrypt one ISAKMP message of this SA; never raises."""
        message = bytes(message)
        if self._problem:
            return _fail(*self._problem)
        if len(message) < IKE_HEADER_LEN:
            return _fail(BAD_LENGTH, f"{len(message)} bytes, the ISAKMP header needs {IKE_HEADER_LEN}")
        hdr = parse_header(message)
        if hdr.ispi != self.icookie:
            return _fail(NO_KEY, f"key is for initiator cookie {self.icookie.hex()}, message has {hdr.ispi.hex()}")
        if not hdr.flags & FLAG_ENCRYPTION:
            return _fail(UNSUPPORTED, "not encrypted (E flag clear)")
        fingerprint = hashlib.sha256(message).digest()
        if fingerprint in self._seen:
            self._seen.move_to_end(fingerprint)
            return self._seen[fingerprint]

        # RFC 2408 3.1: Length counts the header, payloads and padding; when it
        # does not give whole blocks, the captured bytes are tried instead
        body = message[IKE_HEADER_LEN:]
        if IKE_HEADER_LEN < hdr.length <= len(message) and (hdr.length - IKE_HEADER_LEN) % self.block == 0:
            body = message[IKE_HEADER_LEN : hdr.length]
        if not body or len(body) % self.block:
            return _fail(BAD_LENGTH, f"{len(body)} encrypted bytes, not whole {self.block}-byte blocks")

        if hdr.mid == 0:  # phase 1 (Main / Aggressive Mode): one chain
            iv = self._phase1_iv
            self._phase1_iv = body[-self.block :]
        else:  # phase 2, Informational, Transaction: a chain per message ID
            iv = self._mid_iv.get(hdr.mid) or self._digest(self._phase1_iv + struct.pack("!I", hdr.mid))
            _remember(self._mid_iv, hdr.mid, body[-self.block :], self._RECENT)
        result = self._decrypt(iv, body, hdr.next_payload, hdr.exchange_type)
        _remember(self._seen, fingerprint, result, self._RECENT)
        return result

    def _decrypt(self, iv: bytes, body: bytes, first: int, exchange_type: int) -> IkeOpened:
        padded = _cbc_decrypt(self._key, iv, body, des=self._des)
        payloads, anomalies = parse_isakmp_inner(first, padded, exchange_type)
        if anomalies:
            return _fail(BAD_PADDING, f"the plaintext is no payload chain ({anomalies[0].kind} "
                                      f"at {anomalies[0].where}): wrong key or IV")
        end = sum(p.length for p in payloads)
        # RFC 2409 appendix B: the last pad byte counts the padding, so there
        # is never more than 255 bytes of it (senders pad to the block size)
        if len(padded) - end > 255:
            return _fail(BAD_PADDING, f"{len(padded) - end} bytes after the payload chain")
        return IkeOpened(OK, first, padded[:end])
