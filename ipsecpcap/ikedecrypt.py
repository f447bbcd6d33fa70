"""Decrypt the encrypted IKE messages of each IKE SA with the analyst's keys.

Runs once over the grouped IKE SAs (messages are few).  IKEv2 messages
decrypt one by one with the SA's SK_e/SK_a (RFC 7296 3.14); SKF fragments
(RFC 7383) are decrypted one by one and their contents joined when the last
one arrives.  IKEv1 is stateful (RFC 2409 appendix B): the IVs chain from
the phase-1 key exchange through every encrypted message, so each IKE SA's
messages are fed in capture order to one decryptor, which needs the chosen
cipher and hash and both KE values from the cleartext part of phase 1.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .crypto.ike import Ikev1Decryptor, ikev2_open
from .dissectors.ikev2 import parse_ikev2, parse_ikev2_inner
from .dissectors.isakmp import parse_isakmp_inner
from .dissectors.records import Payload
from .ikesa import Chosen, IkeSa, is_initiator
from .keymodel import KeyStore

SK, SKF = 46, 53


@dataclass(frozen=True, slots=True)
class Decrypted:
    """What decryption made of one encrypted message."""

    status: str  # ok | integrity_failure | bad_padding | bad_length | unsupported | no_key | fragment
    payloads: tuple[Payload, ...] = ()  # the inner payloads (for SKF: on the fragment that completed them)
    key: str | None = None  # fingerprint of the key used
    anomalies: tuple[str, ...] = ()


@dataclass
class SaKeys:
    """What decryption found for one IKE SA."""

    key: str | None = None
    decrypted: int = 0
    failed: int = 0
    payloads: list[tuple[object, Payload]] = field(default_factory=list)  # (event, payload) in order


def decrypt_ike(sas: list[IkeSa], chosen: dict[int, Chosen], store: KeyStore
                ) -> tuple[dict[int, Decrypted], dict[int, SaKeys]]:
    """Decrypt every encrypted message.  Returns per event (by id) and per
    IKE SA (by id) results.  The messages of an IKE SA without a key have
    none (they read as ``no_key``): a long capture has tens of thousands,
    and often a key for a few of its IKE SAs."""
    by_event: dict[int, Decrypted] = {}
    by_sa: dict[int, SaKeys] = {}
    v2keys = {(k.ispi, k.rspi): k for k in store.ikev2}
    v1keys = {k.icookie: k for k in store.ikev1}
    for sa in sas:
        info = by_sa[id(sa)] = SaKeys()
        if sa.version == 2:
            key = v2keys.get((sa.ispi, sa.rspi))
            _v2(sa, key, info, by_event)
        elif sa.version == 1:
            key = v1keys.get(sa.ispi)
            _v1(sa, key, chosen.get(id(sa)), info, by_event)
    return by_event, by_sa


def _record(info: SaKeys, ev, status: str, payloads, fp, anomalies=()) -> Decrypted:
    d = Decrypted(status, tuple(payloads), fp, tuple(anomalies))
    if status == "ok":
        info.decrypted += 1
        info.payloads.extend((ev, p) for p in payloads)
    elif status not in ("no_key", "fragment"):
        info.failed += 1
    return d


def _v2(sa: IkeSa, key, info: SaKeys, out: dict) -> None:
    if key is None:
        return
    fp = key.fingerprint
    info.key = fp
    frags: dict[tuple, dict[int, bytes]] = {}  # (mid, from initiator) -> {number: plaintext}
    firsts: dict[tuple, int] = {}
    for ev in sa.events:
        m = ev.msg
        if not m.encrypted:  # IKEv2: no SK or SKF payload (RFC 7296 3.14, RFC 7383 2.5)
            continue
        from_init = bool(m.initiator_flag) if m.initiator_flag is not None else bool(is_initiator(sa, ev))
        res = ikev2_open(key, ev.raw, from_init)
        if res.status != "ok":
            out[id(ev)] = _record(info, ev, res.status, (), fp, (res.detail,) if res.detail else ())
            continue
        # the tracker keeps a message's summary, without its SK or SKF payload: dissected again here
        sk = next(p for p in parse_ikev2(ev.raw).payloads if p.type in (SK, SKF))
        if sk.type == SK:
            payloads, anomalies = parse_ikev2_inner(res.first_payload, res.plaintext)
            out[id(ev)] = _record(info, ev, "ok", payloads, fp, [f"{a.kind}:{a.where}" for a in anomalies])
            continue
        # RFC 7383 2.6: fragments are reassembled after each was verified and decrypted
        num, total = sk.fields.get("number"), sk.fields.get("total")
        k = (m.mid, from_init)
        parts = frags.setdefault(k, {})
        parts.setdefault(num, res.plaintext)
        if num == 1 and res.first_payload is not None:
            firsts[k] = res.first_payload
        if total and len(parts) == total and all(i in parts for i in range(1, total + 1)) and k in firsts:
            data = b"".join(parts[i] for i in range(1, total + 1))
            payloads, anomalies = parse_ikev2_inner(firsts[k], data)
            out[id(ev)] = _record(info, ev, "ok", payloads, fp, [f"{a.kind}:{a.where}" for a in anomalies])
            del frags[k]
        else:
            info.decrypted += 1
            out[id(ev)] = Decrypted("fragment", (), fp)


def _v1(sa: IkeSa, key, ch: Chosen | None, info: SaKeys, out: dict) -> None:
    encrypted = [ev for ev in sa.events if ev.msg.encrypted]
    if not encrypted or key is None:
        return
    fp = key.fingerprint
    info.key = fp
    gxi, gxr = _v1_ke(sa)
    enc, bits = _split_cipher(ch.enc if ch else None)
    if gxi is None or gxr is None or enc is None or not (ch and ch.hash_name):
        why = "the phase-1 KE payloads or the chosen proposal were not captured"
        for ev in encrypted:
            out[id(ev)] = _record(info, ev, "unsupported", (), fp, (why,))
        return
    dec = Ikev1Decryptor(key, enc, bits, ch.hash_name, gxi, gxr)
    for ev in sa.events:
        if not ev.msg.encrypted:
            continue
        res = dec.open(ev.raw)
        if res.status != "ok":
            out[id(ev)] = _record(info, ev, res.status, (), fp, (res.detail,) if res.detail else ())
            continue
        payloads, anomalies = parse_isakmp_inner(res.first_payload, res.plaintext, ev.msg.exchange_type)
        out[id(ev)] = _record(info, ev, "ok", payloads, fp, [f"{a.kind}:{a.where}" for a in anomalies])


def _v1_ke(sa: IkeSa) -> tuple[bytes | None, bytes | None]:
    """g^xi and g^xr: the KE payloads of the initiator's and the responder's
    phase-1 messages."""
    gxi = gxr = None
    for ev in sa.events:
        m = ev.msg
        if m.encrypted or m.mid != 0:
            continue
        for p in m.payloads:
            if p.name == "KE" and p.fields.get("data"):
                if is_initiator(sa, ev):
                    gxi = gxi or p.fields["data"]
                else:
                    gxr = gxr or p.fields["data"]
    return gxi, gxr


def _split_cipher(name: str | None) -> tuple[str | None, int | None]:
    """aes-cbc-256 -> ("aes-cbc", 256); 3des-cbc -> ("3des-cbc", None)."""
    if not name:
        return None, None
    base, _, bits = name.rpartition("-")
    if bits.isdigit() and base:
        return base, int(bits)
    return name, None
