"""IKEv2 dissector (RFC 7296, RFC 7383).

``parse_ikev2(data)`` turns the bytes of one IKEv2 message (starting at the
IKE SA initiator's SPI) into an :class:`~.records.IkeMessage`.  It never
raises: anything malformed becomes an :class:`~.records.Anomaly` and the
payloads decoded so far are kept.  The header, generic payload chain and
attribute layouts are RFC 2408's and come from ``isakmp.py``.

``Payload.fields`` keys per payload name:

* ``SA``: proposals (tuple of Proposal; Transform.type/type_name/id/id_name
  and the Key Length attribute)
* ``KE``: group, group_name, data, data_len
* ``IDi``, ``IDr``: id_type, id_type_name, value (readable str), data
* ``CERT``: encoding, encoding_name, data_len, data; ``CERTREQ``: encoding,
  encoding_name, data_len
* ``AUTH``: method, method_name, data_len
* ``Nonce``: data, data_len
* ``N``: protocol, protocol_name, spi, type, type_name, data
* ``D``: protocol, protocol_name, spi_size, spis (tuple of bytes)
* ``V``: data, name (str or None)
* ``TSi``, ``TSr``: selectors (tuple of TrafficSelector)
* ``SK``: inner_next_payload, inner_next_payload_name, data_len (always the
  last payload; its contents stay opaque)
* ``SKF``: number, total, inner_next_payload, inner_next_payload_name, data_len
* ``CP``: cfg_type, cfg_type_name, attributes (tuple of (type, name, value))
* ``EAP``: code, code_name, identifier, eap_type (None for Success/Failure),
  eap_type_name, data_len
* anything else: data_len

``Payload.critical`` is the C bit (RFC 7296 3.2).

``parse_ikev2_inner(first_payload, plaintext)`` decodes the payloads found
inside a decrypted SK payload (``ipsecpcap.crypto.ike`` decrypts) with the
same decoders.
"""
from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable
from typing import Any

from . import iana
from .iana import name
from .isakmp import (
    IKE_HEADER_LEN,
    Element,
    Problems,
    build_message,
    header_only,
    id_value,
    iter_chain,
    message_bounds,
    parse_attributes,
    parse_cfg_attributes,
    parse_header,
    split_spis,
)
from .records import Anomaly, IkeMessage, Payload, Proposal, TrafficSelector, Transform

PAYLOAD_SK = 46
PAYLOAD_SKF = 53
CRITICAL_BIT = 0x80  # RFC 7296 3.2

# RFC 7296 3.3.1 / 3.3.2: "Last Substruc" is 2 (more proposals) / 3 (more
# transforms) or 0 (last)
SUBSTRUC_PROPOSAL = 2
SUBSTRUC_TRANSFORM = 3


def payload_name(ptype: int) -> str:
    return name(iana.IKEV2_PAYLOAD_TYPES, "ikev2-payload-type", ptype)


def _protocol_name(protocol: int) -> str:
    return name(iana.IKEV2_SECURITY_PROTOCOL_IDENTIFIERS, "ikev2-protocol-id", protocol)


# ------------------------------------------------------------------------ SA
def _transform(el: Element, problems: Problems) -> Transform | None:
    # RFC 7296 3.3.2: Transform Type (1), RESERVED (1), Transform ID (2),
    # then Transform Attributes (3.3.5)
    if problems.short(el.body, 4, el.where, "transform"):
        return None
    ttype, _, tid = struct.unpack_from("!BBH", el.body)
    registry, slug = iana.IKEV2_TRANSFORM_IDS_BY_TYPE.get(ttype, ({}, f"ikev2-transform-{ttype}-id"))
    attrs = parse_attributes(el.body[4:], el.where, problems, iana.IKEV2_TRANSFORM_ATTRIBUTE_TYPES,
                             "ikev2-transform-attribute", {})
    return Transform(0, ttype, name(iana.IKEV2_TRANSFORM_TYPES, "ikev2-transform-type", ttype),
                     tid, name(registry, slug, tid), attrs)


def _proposal(el: Element, problems: Problems) -> Proposal | None:
    # RFC 7296 3.3.1: Proposal Num (1), Protocol ID (1), SPI Size (1),
    # Num Transforms (1), SPI (SPI Size), Transforms
    body = el.body
    if problems.short(body, 4, el.where, "proposal"):
        return None
    number, protocol, spi_size, count = body[0], body[1], body[2], body[3]
    if problems.short(body, 4 + spi_size, el.where, f"proposal with {spi_size}-byte SPI"):
        return None
    transforms = []
    start = 4 + spi_size
    first = SUBSTRUC_TRANSFORM if len(body) > start else 0  # no bytes, no chain: the count says if any were due
    # RFC 7296 3.3.2: a transform has 8 fixed bytes
    for tel in iter_chain(body, start, len(body), len(body), first, el.where,
                          lambda i, _t: f"{el.where}.transform[{i}]", problems, min_len=8):
        if tel.next not in (0, SUBSTRUC_TRANSFORM):
            problems.add("bad_header", tel.where, f"last substruc {tel.next} (expected 3 or 0)")
        transform = _transform(tel, problems)
        if transform is not None:
            transforms.append(transform)
    if count != len(transforms) and not problems.clipped:
        problems.add("bad_header", el.where, f"says {count} transforms, {len(transforms)} found")
    return Proposal(number, protocol, _protocol_name(protocol), body[4 : 4 + spi_size], tuple(transforms))


def _sa(body: bytes, where: str, problems: Problems) -> dict[str, Any]:
    # RFC 7296 3.3: the body is a chain of Proposal substructures
    proposals = []
    first = SUBSTRUC_PROPOSAL if body else 0
    # RFC 7296 3.3.1: a proposal has 8 fixed bytes before its SPI
    for el in iter_chain(body, 0, len(body), len(body), first, where,
                         lambda i, _t: f"{where}.proposal[{i}]", problems, min_len=8):
        if el.next not in (0, SUBSTRUC_PROPOSAL):
            problems.add("bad_header", el.where, f"last substruc {el.next} (expected 2 or 0)")
        proposal = _proposal(el, problems)
        if proposal is not None:
            proposals.append(proposal)
    return {"proposals": tuple(proposals)}


# ------------------------------------------------------------ other payloads
def _ke(body: bytes, where: str, problems: Problems) -> dict[str, Any]:
    # RFC 7296 3.4: Diffie-Hellman Group Num (2), RESERVED (2), KE Data
    if problems.short(body, 4, where, "KE header"):
        return {"data_len": len(body)}
    group = struct.unpack_from("!H", body)[0]
    return {
        "group": group,
        "group_name": name(iana.IKEV2_KEY_EXCHANGE_METHODS, "ikev2-ke", group),
        "data": body[4:],
        "data_len": len(body) - 4,
    }


def _id(body: bytes, where: str, problems: Problems) -> dict[str, Any]:
    # RFC 7296 3.5: ID Type (1), RESERVED (3), Identification Data
    if problems.short(body, 4, where, "ID header"):
        return {"data_len": len(body)}
    id_type, data = body[0], body[4:]
    return {
        "id_type": id_type,
        "id_type_name": name(iana.IKEV2_IDENTIFICATION_TYPES, "ikev2-id-type", id_type),
        "value": id_value(id_type, data, where, problems, v2=True),
        "data": data,
    }


def _cert(body: bytes, where: str, problems: Problems) -> dict[str, Any]:
    # RFC 7296 3.6: Cert Encoding (1), Certificate Data
    if problems.short(body, 1, where, "certificate encoding"):
        return {"data_len": 0}
    return {
        "encoding": body[0],
        "encoding_name": name(iana.IKEV2_CERTIFICATE_ENCODINGS, "ikev2-cert-encoding", body[0]),
        "data_len": len(body) - 1,
        "data": body[1:],
    }


def _certreq(body: bytes, where: str, problems: Problems) -> dict[str, Any]:
    # RFC 7296 3.7: Cert Encoding (1), Certification Authority (SHA-1 hashes)
    fields = _cert(body, where, problems)
    fields.pop("data", None)
    return fields


def _auth(body: bytes, where: str, problems: Problems) -> dict[str, Any]:
    # RFC 7296 3.8: Auth Method (1), RESERVED (3), Authentication Data
    if problems.short(body, 4, where, "AUTH header"):
        return {"data_len": len(body)}
    return {
        "method": body[0],
        "method_name": name(iana.IKEV2_AUTHENTICATION_METHODS, "ikev2-auth-method", body[0]),
        "data_len": len(body) - 4,
    }


def _nonce(body: bytes, where: str, problems: Problems) -> dict[str, Any]:
    # RFC 7296 3.9: the Nonce Data is the whole body
    return {"data": body, "data_len": len(body)}


def _notify(body: bytes, where: str, problems: Problems) -> dict[str, Any]:
    # RFC 7296 3.10: Protocol ID (1), SPI Size (1), Notify Message Type (2),
    # SPI (SPI Size), Notification Data
    if problems.short(body, 4, where, "notify header"):
        return {"data_len": len(body)}
    protocol, spi_size, ntype = struct.unpack_from("!BBH", body)
    if problems.short(body, 4 + spi_size, where, f"notify with {spi_size}-byte SPI"):
        spi_size = len(body) - 4
    return {
        "protocol": protocol,
        "protocol_name": _protocol_name(protocol),
        "spi": body[4 : 4 + spi_size],
        "type": ntype,
        "type_name": name(iana.IKEV2_NOTIFY_MESSAGE_TYPES, "ikev2-notify-type", ntype),
        "data": body[4 + spi_size :],
    }


def _delete(body: bytes, where: str, problems: Problems) -> dict[str, Any]:
    # RFC 7296 3.11: Protocol ID (1), SPI Size (1), Num of SPIs (2), SPIs
    if problems.short(body, 4, where, "delete header"):
        return {"data_len": len(body)}
    protocol, spi_size, count = struct.unpack_from("!BBH", body)
    return {
        "protocol": protocol,
        "protocol_name": _protocol_name(protocol),
        "spi_size": spi_size,
        "spis": split_spis(body[4:], spi_size, count, where, problems),
    }


def _vendor(body: bytes, where: str, problems: Problems) -> dict[str, Any]:
    # RFC 7296 3.12: the Vendor ID is the whole body
    return {"data": body, "name": iana.vendor_id_name(body)}


# RFC 7296 3.13.1: TS Type (1), IP Protocol ID (1), Selector Length (2),
# Start Port (2), End Port (2), Starting Address, Ending Address
_TS_HEADER = struct.Struct("!BBHHH")
_TS_ADDRESS_LEN = {7: 4, 8: 16}  # TS_IPV4_ADDR_RANGE, TS_IPV6_ADDR_RANGE


def _selector(ts_type: int, raw: bytes) -> TrafficSelector:
    type_name = name(iana.IKEV2_TRAFFIC_SELECTOR_TYPES, "ikev2-ts-type", ts_type)
    alen = _TS_ADDRESS_LEN.get(ts_type)
    if alen is not None and len(raw) == _TS_HEADER.size + 2 * alen:
        _, proto, _, sport, eport = _TS_HEADER.unpack_from(raw)
        start, stop = raw[8 : 8 + alen], raw[8 + alen :]
        return TrafficSelector(ts_type, type_name, proto, sport, eport,
                               str(ipaddress.ip_address(start)), str(ipaddress.ip_address(stop)))
    # other selector types (TS_FC_ADDR_RANGE, TS_SECLABEL): body as hex
    return TrafficSelector(ts_type, type_name, 0, 0, 0, raw[4:].hex(), "")


def _ts(body: bytes, where: str, problems: Problems) -> dict[str, Any]:
    # RFC 7296 3.13: Number of TSs (1), RESERVED (3), Traffic Selectors
    if problems.short(body, 4, where, "TS header"):
        return {"selectors": ()}
    count, off, selectors = body[0], 4, []
    while off < len(body):
        swhere = f"{where}.selector[{len(selectors)}]"
        if len(body) - off < 4:
            problems.overrun(swhere, f"{len(body) - off} bytes left, selector header needs 4")
            break
        ts_type, _, length = struct.unpack_from("!BBH", body, off)
        alen = _TS_ADDRESS_LEN.get(ts_type)
        if length < 4 or (alen is not None and length != _TS_HEADER.size + 2 * alen):
            problems.add("bad_length", swhere, f"selector length {length} for type {ts_type}")
            break
        if off + length > len(body):
            problems.overrun(swhere, f"selector length {length}, {len(body) - off} bytes left")
            break
        selectors.append(_selector(ts_type, body[off : off + length]))
        off += length
    if count != len(selectors) and not problems.clipped:
        problems.add("bad_header", where, f"says {count} selectors, {len(selectors)} found")
    return {"selectors": tuple(selectors)}


def _cp(body: bytes, where: str, problems: Problems) -> dict[str, Any]:
    # RFC 7296 3.15: CFG Type (1), RESERVED (3), Configuration Attributes
    if problems.short(body, 4, where, "CP header"):
        return {"data_len": len(body)}
    return {
        "cfg_type": body[0],
        "cfg_type_name": name(iana.IKEV2_CFG_TYPES, "ikev2-cfg-type", body[0]),
        "attributes": parse_cfg_attributes(body[4:], where, problems, iana.IKEV2_CFG_ATTRIBUTE_TYPES,
                                           "ikev2-cfg-attribute"),
    }


def _eap(body: bytes, where: str, problems: Problems) -> dict[str, Any]:
    # RFC 7296 3.16 carries one EAP message (RFC 3748 4): Code (1),
    # Identifier (1), Length (2, the whole EAP message), Type (1, requests
    # and responses only), Type-Data
    if problems.short(body, 4, where, "EAP header"):
        return {"data_len": len(body)}
    code, identifier, length = struct.unpack_from("!BBH", body)
    if length != len(body) and not problems.clipped:
        problems.add("bad_length", where, f"EAP length {length}, payload carries {len(body)}")
    eap_type = body[4] if code in (1, 2) and len(body) > 4 else None
    return {
        "code": code,
        "code_name": name(iana.EAP_CODES, "eap-code", code),
        "identifier": identifier,
        "eap_type": eap_type,
        "eap_type_name": None if eap_type is None else name(iana.EAP_METHOD_TYPES, "eap-type", eap_type),
        "data_len": len(body),
    }


def _opaque(body: bytes, where: str, problems: Problems) -> dict[str, Any]:
    return {"data_len": len(body)}


DECODERS: dict[int, Callable[[bytes, str, Problems], dict[str, Any]]] = {
    33: _sa,
    34: _ke,
    35: _id,
    36: _id,
    37: _cert,
    38: _certreq,
    39: _auth,
    40: _nonce,
    41: _notify,
    42: _delete,
    43: _vendor,
    44: _ts,
    45: _ts,
    47: _cp,
    48: _eap,
}


def _encrypted(el: Element, problems: Problems) -> dict[str, Any]:
    inner = {"inner_next_payload": el.next, "inner_next_payload_name": payload_name(el.next)}
    if el.type == PAYLOAD_SK:
        # RFC 7296 3.14: IV, encrypted IKE payloads, padding, pad length, ICV
        return {**inner, "data_len": len(el.body)}
    # RFC 7383 2.5: Fragment Number (2), Total Fragments (2), then as SK
    if problems.short(el.body, 4, el.where, "SKF header"):
        return {**inner, "number": 0, "total": 0, "data_len": len(el.body)}
    number, total = struct.unpack_from("!HH", el.body)
    if not 1 <= number <= total:
        problems.add("bad_header", el.where, f"fragment {number} of {total}")
    if number != 1 and el.next != 0:
        # RFC 7383 2.5: Next Payload MUST be 0 in all but the first fragment
        problems.add("bad_header", el.where, f"fragment {number} names inner payload {el.next}")
    return {"number": number, "total": total, **inner, "data_len": len(el.body) - 4}


def _payload_chain(data: bytes, start: int, end: int, declared_end: int, first: int, prefix: str,
                   problems: Problems) -> list[Payload]:
    """Decode the payload chain in ``data[start:end]``.

    SK and SKF end a chain: their Next Payload names the first payload
    inside the ciphertext (RFC 7296 3.14, RFC 7383 2.5).
    """
    payloads = []
    for el in iter_chain(data, start, end, declared_end, first, f"{prefix}.payloads",
                         lambda i, t: f"{prefix}.payload[{i}]({payload_name(t)})", problems,
                         stop_types=frozenset((PAYLOAD_SK, PAYLOAD_SKF))):
        problems.clipped = el.clipped
        if el.type in (PAYLOAD_SK, PAYLOAD_SKF):
            fields = _encrypted(el, problems)
        else:
            fields = DECODERS.get(el.type, _opaque)(el.body, el.where, problems)
        problems.clipped = False
        payloads.append(Payload(el.type, payload_name(el.type), el.length, bool(el.flags & CRITICAL_BIT), fields))
    return payloads


def parse_ikev2(data: bytes) -> IkeMessage:
    """Dissect one IKEv2 message; never raises."""
    data = bytes(data)
    prefix = "ikev2"
    if len(data) < IKE_HEADER_LEN:
        return header_only(data, Anomaly("truncated", f"{prefix}.header",
                                          f"{len(data)} of {IKE_HEADER_LEN} header bytes"))
    hdr = parse_header(data)
    problems = Problems()
    if hdr.major != 2:
        problems.add("bad_header", f"{prefix}.header", f"major version {hdr.major}, expected 2")
    end, declared_end = message_bounds(data, hdr, prefix, problems)
    payloads = _payload_chain(data, IKE_HEADER_LEN, end, declared_end, hdr.next_payload, prefix, problems)
    encrypted = any(p.type in (PAYLOAD_SK, PAYLOAD_SKF) for p in payloads)
    return build_message(hdr, payloads, problems.items, encrypted)


def parse_ikev2_inner(first_payload: int, data: bytes) -> tuple[tuple[Payload, ...], tuple[Anomaly, ...]]:
    """The payload chain inside a decrypted SK payload (RFC 7296 3.14), or
    inside the reassembled plaintext of all SKF fragments (RFC 7383 2.6);
    never raises.

    ``first_payload`` is the SK payload's Next Payload field (SKF: fragment
    1's); ``data`` is the plaintext with Padding and Pad Length removed, so
    the chain must fill it exactly: bytes after the last payload are
    ``trailing_data``.  Anomalies are placed at ``ikev2.sk.payload[i](X)``.
    """
    data = bytes(data)
    problems = Problems()
    payloads = _payload_chain(data, 0, len(data), len(data), first_payload, "ikev2.sk", problems)
    return tuple(payloads), tuple(problems.items)
