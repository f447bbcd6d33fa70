"""Open ESP packets (RFC 4303): verify the ICV, then decrypt, then check the trailer.

``EspCipher(key)`` prepares everything once (cipher contexts, HMAC pads,
AEAD objects); ``open(esp, seq_hi)`` is the per-packet path and never
raises.  ``esp`` runs from the SPI to the end of the ESP packet, ICV
included, as found after the IP header or after the UDP header of ESP in
UDP (RFC 3948).

Order (RFC 4303 3.4.4): lengths first (they do not depend on the key), then
integrity, then decryption, then the trailer.

* **Lengths** -- fewer than SPI + sequence + IV + ICV + 2 bytes of
  ciphertext, or a ciphertext that is not a multiple of the cipher's block
  size: ``bad_length``.
* **Integrity** -- HMAC / XCBC / CMAC over SPI .. end of ciphertext, with the
  high 32 bits of an extended sequence number appended when ``seq_hi`` is
  given (RFC 4303 2.2.1, 3.3.2.2.1).  Combined modes check their tag with
  AAD = SPI | seq (8 bytes), or SPI | seq_hi | seq_lo (12 bytes) with ESN
  (RFC 4106 5, RFC 4309 5, RFC 7634 2.1); AES-GMAC (RFC 4543 3) also
  authenticates IV, payload and trailer.  A failure is ``integrity_failure``
  and never carries a payload.
* **Trailer** (RFC 4303 2.4-2.6) -- a pad length that does not fit in the
  plaintext is ``bad_padding``.  Padding bytes other than the default
  1, 2, 3, ... are *reported in detail and the packet stays "ok"* when an
  ICV or tag authenticated it: the sender chose them, and the integrity
  check already proves the key.  When nothing authenticates the plaintext
  (integrity ``none``, or an ICV that is not checked: ``any-N``, or an
  integrity algorithm given without its key as in tcpdump's
  ``-E 3des-cbc-hmac96:...``), the padding is the only evidence that the
  key is right, so non-default padding is then ``bad_padding`` (Wireshark
  checks the padding as well).  Next header 59 is a dummy packet (RFC 4303
  2.6), reported in detail.  Traffic-flow-confidentiality padding (RFC 4303
  2.7) after an inner IPv4/IPv6 packet (next header 4/41) or a UDP datagram
  (17) is cut off using the inner length field: ``payload`` is then the
  inner packet and ``tfc_len`` the bytes removed.  A combined-mode or NULL
  trailer that does not end on a 4-byte boundary (RFC 4303 2.4) is reported
  in detail, not refused.

:meth:`EspCipher.verify` answers "is this the key?" for trial matching: the
ICV or tag.  For an SA whose plaintext nothing authenticates it decrypts and
accepts only default padding and a plausible next header (for 4/41 an IP
header of that version whose length fits): a heuristic, said so in its
docstring (about 1/4000 of wrong keys pass one packet).

An ``EspCipher`` keeps a CBC decryption context across packets (each packet
is decrypted as IV | ciphertext and the first block dropped, which makes the
chaining from the previous packet irrelevant), so one instance must not be
shared between threads.
"""
from __future__ import annotations

from dataclasses import dataclass
from hmac import compare_digest

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from ..keymodel import EspKey
from . import registry
from .registry import AESCCM, AESGCM, ChaCha20Poly1305

DEFAULT_PAD = bytes(range(1, 256))  # RFC 4303 2.4: 1, 2, 3, ...
DUMMY = 59  # RFC 4303 2.6: IPv6 "No Next Header" marks a TFC dummy packet
# next headers accepted by the no-integrity heuristic of verify()
PLAUSIBLE_NH = frozenset({1, 2, 4, 6, 17, 41, 47, 50, 51, 58, 59, 89, 103, 112, 132, 136, 137})


@dataclass(frozen=True, slots=True)
class EspOpened:
    status: str  # "ok" | "integrity_failure" | "bad_padding" | "bad_length" | "unsupported"
    next_header: int | None
    payload: bytes | None  # protected data without padding, pad length, next header (tunnel: the inner IP packet)
    pad_len: int | None
    detail: str = ""  # one line, never key bytes
    tfc_len: int = 0  # TFC padding bytes cut after the inner packet (RFC 4303 2.7)


def _fail(status: str, detail: str) -> EspOpened:
    return EspOpened(status, None, None, None, detail)


# The per-packet "ok" result is built through the slot descriptors: the same frozen object as
# EspOpened(...), at half the cost of the dataclass __init__ (6 object.__setattr__ calls), which
# was a fifth of the time of opening a 1400-byte AES-GCM packet.
_new = object.__new__
_SET = tuple(EspOpened.__dict__[f].__set__ for f in ("status", "next_header", "payload", "pad_len", "detail",
                                                       "tfc_len"))


def _ok(nh: int, payload: bytes, pad: int, detail: str, tfc: int) -> EspOpened:
    r = _new(EspOpened)
    s_status, s_nh, s_payload, s_pad, s_detail, s_tfc = _SET
    s_status(r, "ok")
    s_nh(r, nh)
    s_payload(r, payload)
    s_pad(r, pad)
    s_detail(r, detail)
    s_tfc(r, tfc)
    return r


_INTEGRITY_FAILURE = EspOpened("integrity_failure", None, None, None, "ICV does not verify")
_TAG_FAILURE = EspOpened("integrity_failure", None, None, None, "AEAD tag does not verify")


class EspCipher:
    """Opens the ESP packets of one SA direction (see the module docstring)."""

    __slots__ = ("enc", "integ", "icv_len", "iv_len", "block", "problem", "authenticated",
                 "_min_ct", "_salt", "_mac", "_plain", "_cbc", "_aead", "_alg", "_note")

    def __init__(self, key: EspKey):
        self.enc = registry.ENC.get(key.enc)
        self.integ = registry.integ_algo(key.integ)
        self.problem = self._problem(key)
        self.icv_len = self.iv_len = 0
        self.block = 1
        self.authenticated = False
        self._min_ct = 2
        self._mac = self._cbc = self._aead = self._alg = None
        self._salt = b""
        self._plain = None
        self._note = ""
        if self.problem:
            return
        enc, integ = self.enc, self.integ
        self.iv_len, self.block = enc.iv_len, enc.block
        self.icv_len = enc.icv_len if enc.aead else integ.icv_len
        # an integrity algorithm without its key (tcpdump's "-hmac96"): the ICV is skipped, unchecked
        keyless = integ.checked and not key.integ_key
        self.authenticated = enc.aead or (integ.checked and not keyless)
        if not self.authenticated:
            self._note = ("unauthenticated: no integrity algorithm" if integ.kind == "none" else
                          f"unauthenticated: {integ.icv_len}-byte ICV not checked ({integ.name}"
                          f"{', no key' if keyless else ''})")
        self._min_ct = max(2, enc.block)
        k, self._salt = registry.split_key(enc, key.enc_key)
        if not enc.aead and not keyless:
            self._mac = registry.new_mac(integ, key.integ_key)
        mode = enc.mode
        if mode == "null":
            self._plain = self._plain_null
        elif mode == "cbc":
            if enc.name == "des-cbc":
                k = k * 3  # single DES = EDE with K1 = K2 = K3
            # one context for the SA: each packet is fed as IV | ciphertext (see module docstring)
            self._cbc = Cipher(enc.cipher(k), modes.CBC(bytes(enc.block))).decryptor()
            self._plain = self._plain_cbc
        elif mode == "ctr":
            self._alg = enc.cipher(k)
            self._plain = self._plain_ctr
        elif mode == "gcm" and enc.icv_len == 16:
            self._aead = AESGCM(k)
            self._plain = self._plain_aead12
        elif mode == "gcm":  # AESGCM only takes 16-byte tags: truncated tags via the GCM mode
            self._alg = enc.cipher(k)
            self._plain = self._plain_gcm_short
        elif mode == "gmac":
            self._aead = AESGCM(k)
            self._plain = self._plain_gmac
        elif mode == "ccm":
            self._aead = AESCCM(k, tag_length=enc.icv_len)
            self._plain = self._plain_aead_ccm
        elif mode == "chacha20-poly1305":
            self._aead = ChaCha20Poly1305(k)
            self._plain = self._plain_aead12
        else:  # pragma: no cover - every registry mode is handled above
            self.problem = f"{enc.name}: mode {mode} not implemented"

    def _problem(self, key: EspKey) -> str | None:
        if self.enc is None:
            return f"unknown encryption algorithm {key.enc!r}"
        if self.integ is None:
            return f"unknown integrity algorithm {key.integ!r}"
        if not isinstance(key.enc_key, (bytes, bytearray)) or not isinstance(key.integ_key, (bytes, bytearray)):
            return "key material is not bytes"
        problem = registry.enc_problem(key.enc, key.enc_key)
        if problem:
            return problem
        if self.enc.aead:
            if self.integ.name != "none":
                return f"{key.enc} is a combined mode: integrity must be none, not {key.integ}"
            return None
        if self.integ.checked and not key.integ_key:
            return None  # no key for the ICV: opened unauthenticated, as tcpdump does (see __init__)
        return registry.integ_problem(key.integ, key.integ_key)

    # ------------------------------------------------------------------ per packet

    def open(self, esp, seq_hi: int | None = None) -> EspOpened:
        """Verify, decrypt and strip one ESP packet; never raises."""
        if self.problem:
            return _fail("unsupported", self.problem)
        if seq_hi is None and type(esp) is bytes:  # the common case: _prepare's checks, inline
            ct = len(esp) - 8 - self.iv_len - self.icv_len
            if ct >= self._min_ct and not ct % self.block:
                pt = self._plain(memoryview(esp), None)
                if pt is None:
                    return _TAG_FAILURE if self.enc.aead else _INTEGRITY_FAILURE
                return self._trailer(pt)
        mv, hi, bad = self._prepare(esp, seq_hi)
        if bad is not None:
            return bad
        pt = self._plain(mv, hi)
        if pt is None:
            return _TAG_FAILURE if self.enc.aead else _INTEGRITY_FAILURE
        return self._trailer(pt)

    def verify(self, esp, seq_hi: int | None = None) -> bool:
        """Does this packet authenticate under this key?  (Trial matching, ESN inference.)

        The ICV, or for combined modes the tag.  For an SA without checked
        integrity this is a heuristic: the packet decrypts to default padding
        and a plausible next header (for 4/41 an IP header of that version
        whose length fits).  A wrong key passes one packet with a probability
        of about 1/4000 (no padding and a plausible next header by chance), so
        a caller binding such a key should want more than one packet.
        """
        if self.problem:
            return False
        mv, hi, bad = self._prepare(esp, seq_hi)
        if bad is not None:
            return False
        if self._mac is not None:
            return self._icv_ok(mv, hi)
        if self.enc.aead:
            return self._plain(mv, hi) is not None
        res = self._trailer(self._plain(mv, hi))
        if res.status != "ok" or res.next_header not in PLAUSIBLE_NH:
            return False
        p, nh = res.payload, res.next_header
        if nh == 4:
            return len(p) >= 20 and p[0] >> 4 == 4 and (p[0] & 15) >= 5 and int.from_bytes(p[2:4], "big") <= len(p)
        if nh == 41:
            return len(p) >= 40 and p[0] >> 4 == 6 and 40 + int.from_bytes(p[4:6], "big") <= len(p)
        return True

    def inline_parts(self) -> tuple | None:
        """What a loop over many packets needs to open this SA's packets itself, without
        a call to :meth:`open` per packet; None when only :meth:`open` may open them.

        ``("aead", decrypt, salt)`` -- AES-GCM with a 16-byte ICV and ChaCha20-Poly1305
        (as :meth:`_plain_aead12`): the plaintext is ``decrypt(salt | esp[8:16],
        esp[16:], esp[:8])`` when that is at least 2 bytes, or :class:`InvalidTag`.

        ``("cbc", update, iv_len, block, min_ct, icv_len, inner, outer)`` -- a CBC
        cipher with an HMAC (as :meth:`_plain_cbc`): the ICV is
        ``outer.copy().update(inner.copy().update(esp[:-icv_len]).digest()).digest()[:icv_len]``;
        the plaintext is ``update(esp[8:-icv_len])[iv_len:]`` (the SA's one CBC
        context, see the module docstring) when the ciphertext after the IV is at
        least ``min_ct`` bytes and a multiple of ``block``.

        Both are authenticated, so the trailer's padding bytes cannot make a packet
        fail (see :meth:`_trailer`, which the loop must still use for anything but
        the common shape it checks itself).  Only for packets without the high half
        of an extended sequence number."""
        if self.problem:
            return None
        fn = getattr(self._plain, "__func__", None)
        if fn is EspCipher._plain_aead12:
            return ("aead", self._aead.decrypt, self._salt)
        if fn is EspCipher._plain_cbc and self._mac is not None and hasattr(self._mac, "pads"):
            inner, outer = self._mac.pads()
            return ("cbc", self._cbc.update, self.iv_len, self.block, self._min_ct, self.icv_len, inner, outer)
        return None

    def _prepare(self, esp, seq_hi):
        """(memoryview, ESN high bytes or None, failure or None)."""
        try:
            mv = memoryview(esp)
            if mv.itemsize != 1 or mv.ndim != 1:
                mv = mv.cast("B")
        except (TypeError, ValueError):
            return None, None, _fail("bad_length", f"not a byte buffer: {type(esp).__name__}")
        hi = None
        if seq_hi is not None:
            if not isinstance(seq_hi, int) or not 0 <= seq_hi <= 0xFFFFFFFF:
                return None, None, _fail("unsupported", "seq_hi is not a 32-bit unsigned integer")
            hi = seq_hi.to_bytes(4, "big")
        ct = len(mv) - 8 - self.iv_len - self.icv_len
        if ct < self._min_ct:
            return None, None, _fail("bad_length", f"{len(mv)}-byte ESP packet is shorter than SPI, sequence, "
                                     f"{self.iv_len}-byte IV, {self._min_ct}-byte ciphertext and "
                                     f"{self.icv_len}-byte ICV")
        if ct % self.block:
            return None, None, _fail("bad_length", f"{ct}-byte ciphertext is not a multiple of the "
                                     f"{self.block}-byte block")
        return mv, hi, None

    def _icv_ok(self, mv, hi) -> bool:
        end = len(mv) - self.icv_len
        got = self._mac.icv(mv[:end], hi) if hi is not None else self._mac.icv(mv[:end])
        return compare_digest(got, mv[end:])

    # plaintext (ciphertext decrypted, trailer included) or None when integrity fails

    def _plain_null(self, mv, hi):
        if self._mac is not None and not self._icv_ok(mv, hi):
            return None
        return bytes(mv[8:len(mv) - self.icv_len])

    def _plain_cbc(self, mv, hi):
        if self._mac is not None and not self._icv_ok(mv, hi):
            return None
        # IV | ciphertext through the SA's CBC context: block 0 is garbage, the rest is the plaintext
        return self._cbc.update(mv[8:len(mv) - self.icv_len])[self.iv_len:]

    def _plain_ctr(self, mv, hi):
        if self._mac is not None and not self._icv_ok(mv, hi):
            return None
        block = self._salt + bytes(mv[8:16]) + b"\x00\x00\x00\x01"  # RFC 3686 section 4
        return Cipher(self._alg, modes.CTR(block)).decryptor().update(mv[16:len(mv) - self.icv_len])

    def _aad(self, mv, hi):
        return mv[:8] if hi is None else bytes(mv[:4]) + hi + bytes(mv[4:8])

    def _plain_aead12(self, mv, hi):  # AES-GCM-16, ChaCha20-Poly1305: 12-byte nonce = salt | IV
        try:
            return self._aead.decrypt(self._salt + bytes(mv[8:16]), mv[16:], self._aad(mv, hi))
        except InvalidTag:
            return None

    def _plain_aead_ccm(self, mv, hi):  # 11-byte nonce = 3-byte salt | IV
        try:
            return self._aead.decrypt(self._salt + bytes(mv[8:16]), mv[16:], self._aad(mv, hi))
        except InvalidTag:
            return None

    def _plain_gcm_short(self, mv, hi):
        end = len(mv) - self.icv_len
        d = Cipher(self._alg, modes.GCM(self._salt + bytes(mv[8:16]), bytes(mv[end:]),
                                        min_tag_length=self.icv_len)).decryptor()
        d.authenticate_additional_data(self._aad(mv, hi))
        pt = d.update(mv[16:end])
        try:
            return pt + d.finalize()
        except InvalidTag:
            return None

    def _plain_gmac(self, mv, hi):
        end = len(mv) - 16
        aad = mv[:end] if hi is None else bytes(mv[:4]) + hi + bytes(mv[4:end])
        try:
            self._aead.decrypt(self._salt + bytes(mv[8:16]), mv[end:], aad)
        except InvalidTag:
            return None
        return bytes(mv[16:end])

    def _trailer(self, pt: bytes) -> EspOpened:
        n = len(pt)
        pad, nh = pt[n - 2], pt[n - 1]
        if pad + 2 > n:
            return EspOpened("bad_padding", None, None, pad,
                             f"pad length {pad} does not fit in the {n}-byte plaintext")
        end = n - 2 - pad
        notes = None  # built only for the unusual cases; the common packet has nothing to say
        if pad and pt[end:n - 2] != DEFAULT_PAD[:pad]:
            if not self.authenticated:
                return EspOpened("bad_padding", None, None, pad,
                                 "padding is not 1, 2, 3, ... and nothing authenticates the plaintext")
            notes = ["padding bytes are not the RFC 4303 2.4 default 1, 2, 3, ..."]
        tfc = 0
        # the inner packet's own length (tunnel IPv4/IPv6, transport UDP) tells TFC padding apart
        if nh == 4:
            inner = ((pt[2] << 8) | pt[3]) if end >= 20 and pt[0] >> 4 == 4 else end
        elif nh == 41:
            plen = ((pt[4] << 8) | pt[5]) if end >= 40 and pt[0] >> 4 == 6 else 0
            inner = 40 + plen if plen else end  # 0: not IPv6, or a jumbogram (RFC 2675)
        elif nh == 17:
            inner = ((pt[4] << 8) | pt[5]) if end >= 8 else end
        else:
            inner = end
            if nh == DUMMY:
                notes = (notes or []) + ["dummy packet (next header 59, RFC 4303 2.6)"]
        if inner != end:
            notes = notes or []
            if inner > end:
                notes.append(f"inner length {inner} exceeds the {end}-byte payload")
            elif inner < (20 if nh == 4 else 8):
                notes.append(f"inner length field {inner} is too small to tell TFC padding apart")
            else:
                tfc = end - inner
                end = inner
                notes.append(f"{tfc} bytes of TFC padding (RFC 4303 2.7)")
        if self._note:
            notes = (notes or []) + [self._note]
        elif n & 3 and self.block < 4:
            notes = (notes or []) + ["trailer not 4-byte aligned (RFC 4303 2.4)"]
        return _ok(nh, pt[:end], pad, "; ".join(notes) if notes else "", tfc)
