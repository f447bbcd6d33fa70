"""ISAKMP / IKEv1 dissector (RFC 2408, RFC 2409, RFC 2407, RFC 3947).

``parse_isakmp(data)`` turns the bytes of one ISAKMP message (starting at the
initiator cookie, after any RFC 3948 non-ESP marker) into an
:class:`~.records.IkeMessage`.  It never raises: anything malformed becomes an
:class:`~.records.Anomaly` and the payloads decoded so far are kept.

This module also holds the parts of the ISAKMP framework that IKEv2 reuses
unchanged (RFC 7296 3.1-3.3.5 keep RFC 2408's layouts): the 28-byte header,
the generic payload chain, data attributes and identification rendering.
``ikev2.py`` imports them from here.

``Payload.fields`` keys per payload name:

* ``SA``: doi, doi_name, situation, proposals (tuple of Proposal; phase-1
  attributes for protocol ISAKMP (1), IPsec DOI attributes otherwise);
  situation_data (bytes) when the situation carries labeled-domain data or
  the DOI is not IPsec; ``P``/``T`` outside an SA: data_len
* ``KE``, ``HASH``, ``SIG``, ``NONCE``: data, data_len
* ``ID``: id_type, id_type_name, protocol, port, value (readable str), data
* ``CERT``, ``CR``: encoding, encoding_name, data_len, data
* ``N``: doi, protocol, protocol_name, spi, type, type_name, data
* ``D``: doi, protocol, protocol_name, spi_size, spis (tuple of bytes)
* ``VID``: data, name (str or None)
* ``NAT-D`` (20; drafts: 130, and 15 in Main/Aggressive Mode): hash
* ``NAT-OA`` (21; drafts: 131, and 16 in Main/Aggressive Mode): id_type,
  id_type_name, address
* ``ATTR`` (Mode Config / XAUTH): cfg_type, cfg_type_name, identifier,
  attributes (tuple of (type, name, value bytes))
* ``CISCO-FRAG``: fragment_id, number, last, data_len
* ``encrypted`` (E flag set: the whole body, typed with the header's Next
  Payload): first_payload, data_len
* anything else: data_len

``parse_isakmp_inner(first_payload, plaintext, exchange_type)`` decodes the
payloads of a decrypted body (``ipsecpcap.crypto.ike`` decrypts) with the
same decoders.
"""
from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

from . import iana
from .iana import name
from .records import Anomaly, Attribute, IkeMessage, Payload, Proposal, Transform

# RFC 2408 3.1 (and RFC 7296 3.1): IKE SA Initiator's SPI / cookie (8),
# Responder's SPI / cookie (8), Next Payload (1), MjVer|MnVer (1),
# Exchange Type (1), Flags (1), Message ID (4), Length (4) = 28 bytes.
HEADER = struct.Struct("!8s8sBBBBII")
IKE_HEADER_LEN = HEADER.size

# RFC 2408 3.2 (and RFC 7296 3.2): Next Payload (1), RESERVED / C bit (1),
# Payload Length (2), the length counting these 4 bytes.
GENERIC_HEADER = struct.Struct("!BBH")
GENERIC_HEADER_LEN = GENERIC_HEADER.size

# RFC 2408 3.1 flags
FLAG_ENCRYPTION = 0x01
FLAG_COMMIT = 0x02
FLAG_AUTH_ONLY = 0x04

PAYLOAD_PROPOSAL = 2
PAYLOAD_TRANSFORM = 3


class Header(NamedTuple):
    ispi: bytes
    rspi: bytes
    next_payload: int
    major: int
    minor: int
    exchange_type: int
    flags: int
    mid: int
    length: int


# ------------------------------------------------------------------ anomalies
class Problems:
    """Collects anomalies while one message is dissected.

    ``clipped`` is set while decoding a payload whose body was cut short by
    the end of the data, so that a short fixed part is reported once, as the
    truncation it is, rather than as a second, bogus length error.
    """

    __slots__ = ("items", "clipped")

    def __init__(self) -> None:
        self.items: list[Anomaly] = []
        self.clipped = False

    def add(self, kind: str, where: str, detail: str = "") -> None:
        self.items.append(Anomaly(kind, where, detail))

    def overrun(self, where: str, detail: str) -> None:
        """A length that runs past its container: a truncation if the
        payload being decoded was itself cut short, else a bad length."""
        self.add("truncated" if self.clipped else "bad_length", where, detail)

    def short(self, body: bytes, need: int, where: str, what: str) -> bool:
        """True (and an anomaly) when ``body`` holds fewer than ``need`` bytes."""
        if len(body) >= need:
            return False
        if not self.clipped:
            self.add("bad_length", where, f"{what} needs {need} bytes, payload has {len(body)}")
        return True


# --------------------------------------------------------------------- header
def parse_header(data: bytes) -> Header:
    """The 28-byte header; missing bytes read as zero (caller reports them)."""
    raw = bytes(data[:IKE_HEADER_LEN])
    if len(raw) < IKE_HEADER_LEN:
        raw += b"\x00" * (IKE_HEADER_LEN - len(raw))
    ispi, rspi, np, version, exch, flags, mid, length = HEADER.unpack(raw)
    return Header(ispi, rspi, np, version >> 4, version & 0x0F, exch, flags, mid, length)


def exchange_name(major: int, exchange_type: int) -> str:
    if major == 2:
        return name(iana.IKEV2_EXCHANGE_TYPES, "ikev2-exchange-type", exchange_type)
    return name(iana.ISAKMP_EXCHANGE_TYPES, "isakmp-exchange-type", exchange_type)


def build_message(
    hdr: Header,
    payloads: list[Payload] | tuple[Payload, ...],
    anomalies: list[Anomaly],
    encrypted: bool,
) -> IkeMessage:
    v2 = hdr.major == 2
    return IkeMessage(
        version=hdr.major,
        minor_version=hdr.minor,
        ispi=hdr.ispi,
        rspi=hdr.rspi,
        next_payload=hdr.next_payload,
        exchange_type=hdr.exchange_type,
        exchange=exchange_name(hdr.major, hdr.exchange_type),
        flags=hdr.flags,
        mid=hdr.mid,
        length=hdr.length,
        # RFC 7296 3.1: I (0x08) and R (0x20) exist only in IKEv2
        initiator_flag=bool(hdr.flags & 0x08) if v2 else None,
        response_flag=bool(hdr.flags & 0x20) if v2 else None,
        encrypted=encrypted,
        payloads=tuple(payloads),
        anomalies=tuple(anomalies),
    )


def header_only(data: bytes, anomaly: Anomaly) -> IkeMessage:
    """An IkeMessage with just the (possibly zero-filled) header and one anomaly."""
    return build_message(parse_header(data), (), [anomaly], False)


def message_bounds(data: bytes, hdr: Header, prefix: str, problems: Problems) -> tuple[int, int]:
    """(end, declared_end) of the payload area; reports length problems.

    ``declared_end`` is where the header's Length field says the message ends
    (RFC 2408 3.1: "Length of total message (header + payloads) in octets");
    ``end`` is that, clipped to the bytes we have.
    """
    where = f"{prefix}.header"
    declared = hdr.length
    if declared < IKE_HEADER_LEN:
        problems.add("bad_length", where, f"message length {declared} < {IKE_HEADER_LEN}-byte header")
        declared = len(data)
    elif declared > len(data):
        problems.add("truncated", where, f"message length {declared}, {len(data)} bytes captured")
    elif declared < len(data):
        problems.add("trailing_data", where, f"{len(data) - declared} bytes after the {declared}-byte message")
    return min(declared, len(data)), declared


# -------------------------------------------------------------- payload chain
class Element(NamedTuple):
    index: int
    type: int
    next: int
    flags: int  # the byte after Next Payload (IKEv2: C bit + RESERVED)
    length: int  # the Payload Length field
    body: bytes  # after the 4-byte generic header, clipped to the container
    clipped: bool  # True when the container ended before ``length`` did
    where: str


def iter_chain(
    data: bytes,
    start: int,
    end: int,
    declared_end: int,
    first: int,
    container: str,
    where_of: Callable[[int, int], str],
    problems: Problems,
    min_len: int = GENERIC_HEADER_LEN,
    stop_types: frozenset[int] = frozenset(),
) -> Iterator[Element]:
    """Walk a chain of generic-header structures (payloads, proposals, transforms).

    RFC 2408 3.2 / RFC 7296 3.2: each element starts with Next Payload (1),
    a reserved/critical byte (1) and a Payload Length (2) that counts those
    4 bytes; the chain ends when Next Payload is 0.  Every element consumes
    at least ``min_len`` >= 4 bytes, so the walk always advances and ends.
    An element in ``stop_types`` (IKEv2 SK/SKF) ends the chain: its Next
    Payload names the first *inner* payload.
    """
    offset, ptype, index = start, first, 0
    while ptype != 0:
        where = where_of(index, ptype)
        if end - offset < GENERIC_HEADER_LEN:
            kind = "truncated" if declared_end > end or problems.clipped else "bad_length"
            problems.add(kind, where, f"expected here, but only {max(end - offset, 0)} bytes left")
            return
        nxt, flags, length = GENERIC_HEADER.unpack_from(data, offset)
        if length < min_len:
            if length == 0:
                problems.add("loop", where, "length 0: the chain cannot advance")
            else:
                problems.add("bad_length", where, f"length {length} < minimum {min_len}")
            return
        clipped = offset + length > end
        if clipped:
            if offset + length > declared_end and not problems.clipped:
                # longer than its container says it may be: the length is
                # wrong, so what follows is not this element's body
                problems.add("bad_length", where, f"length {length} overruns its container ({end - offset} bytes left)")
                return
            # the data ran out first (snaplen, IP fragment): keep what is there
            problems.add("truncated", where, f"length {length}, only {end - offset} bytes left")
        # the body follows the 4-byte generic header (RFC 2408 3.2)
        body = bytes(data[offset + GENERIC_HEADER_LEN : min(offset + length, end)])
        yield Element(index, ptype, nxt, flags, length, body, clipped, where)
        if clipped:
            return
        offset += length
        index += 1
        if ptype in stop_types:
            break
        ptype = nxt
    if offset < end:
        problems.add("trailing_data", container, f"{end - offset} bytes after the last element")


# ----------------------------------------------------------------- attributes
# RFC 2408 3.3 (and RFC 7296 3.3.5): AF|Attribute Type (2), then either the
# 2-byte value (AF=1, TV) or Attribute Length (2) and that many value bytes
# (AF=0, TLV).
ATTRIBUTE_HEADER = struct.Struct("!HH")


def parse_attributes(
    buf: bytes,
    where: str,
    problems: Problems,
    type_names: Mapping[int, str],
    type_slug: str,
    value_registries: Mapping[int, tuple[Mapping[int, str], str]],
) -> tuple[Attribute, ...]:
    attrs: list[Attribute] = []
    off, index = 0, 0
    while off < len(buf):
        # (the anomaly's place, "<where>.attribute[<index>]", is spelled out only for an anomaly)
        if len(buf) - off < ATTRIBUTE_HEADER.size:
            problems.overrun(f"{where}.attribute[{index}]", f"{len(buf) - off} bytes left, attribute header needs 4")
            break
        af_type, length_or_value = ATTRIBUTE_HEADER.unpack_from(buf, off)
        atype = af_type & 0x7FFF
        value: int | bytes
        if af_type & 0x8000:  # TV: the value is the 2-byte field itself
            value = length_or_value
            off += ATTRIBUTE_HEADER.size
        else:  # TLV: 4-byte header + Attribute Length value bytes
            raw = buf[off + ATTRIBUTE_HEADER.size : off + ATTRIBUTE_HEADER.size + length_or_value]
            if len(raw) < length_or_value:
                problems.overrun(f"{where}.attribute[{index}]",
                                 f"attribute length {length_or_value}, {len(raw)} bytes left")
                break
            value = int.from_bytes(raw, "big") if 1 <= len(raw) <= 8 else bytes(raw)
            off += ATTRIBUTE_HEADER.size + length_or_value
        value_name = None
        if isinstance(value, int) and atype in value_registries:
            registry, slug = value_registries[atype]
            value_name = name(registry, slug, value)
        attrs.append(Attribute(atype, name(type_names, type_slug, atype), value, value_name))
        index += 1
    return tuple(attrs)


# ------------------------------------------------------------ identification
_DN_ATTRIBUTE_NAMES = {
    "2.5.4.3": "CN",
    "2.5.4.4": "SN",
    "2.5.4.5": "serialNumber",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.9": "street",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "2.5.4.12": "title",
    "2.5.4.42": "GN",
    "1.2.840.113549.1.9.1": "E",
    "0.9.2342.19200300.100.1.1": "UID",
    "0.9.2342.19200300.100.1.25": "DC",
}


def _der_items(buf: bytes) -> list[tuple[int, bytes]] | None:
    """Split DER TLVs (X.690 8.1); None when the encoding does not fit."""
    items, off = [], 0
    while off < len(buf):
        if len(buf) - off < 2:
            return None
        tag, length = buf[off], buf[off + 1]
        off += 2
        if length & 0x80:  # long form: the low bits count the length bytes
            count = length & 0x7F
            if count == 0 or count > 4 or len(buf) - off < count:
                return None
            length = int.from_bytes(buf[off : off + count], "big")
            off += count
        if len(buf) - off < length:
            return None
        items.append((tag, buf[off : off + length]))
        off += length
    return items


def _oid(raw: bytes) -> str:
    """X.690 8.19 object identifier to dotted text."""
    if not raw:
        return ""
    arcs, value = [], 0
    for byte in raw:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    first = arcs[0] if arcs else 0
    head = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    return ".".join(str(a) for a in head + arcs[1:])


def der_dn_text(data: bytes) -> str | None:
    """Best-effort "C=CH, O=strongSwan, CN=moon" from a DER Name (RFC 5280 4.1.2.4)."""
    outer = _der_items(data)
    if not outer or len(outer) != 1 or outer[0][0] != 0x30:  # SEQUENCE OF
        return None
    rdns = _der_items(outer[0][1])
    if not rdns:
        return None
    parts = []
    for set_tag, rdn in rdns:
        atvs = _der_items(rdn)
        if set_tag != 0x31 or not atvs:  # SET OF AttributeTypeAndValue
            return None
        for seq_tag, atv in atvs:
            inner = _der_items(atv)
            if seq_tag != 0x30 or not inner or len(inner) != 2 or inner[0][0] != 0x06:
                return None
            oid = _oid(inner[0][1])
            tag, raw = inner[1]
            codec = {0x1E: "utf-16-be", 0x14: "latin-1"}.get(tag, "utf-8")  # BMP, T61, else UTF-8/ASCII
            parts.append(f"{_DN_ATTRIBUTE_NAMES.get(oid, oid)}={raw.decode(codec, 'replace')}")
    return ", ".join(parts)


def _ip_text(raw: bytes) -> str:
    return str(ipaddress.ip_address(raw))


def _subnet_text(addr: bytes, mask: bytes) -> str:
    """"10.0.0.0/24" when the mask is contiguous, else "address/mask"."""
    bits = len(mask) * 8
    host = ~int.from_bytes(mask, "big") & ((1 << bits) - 1)
    if host & (host + 1) == 0:  # 0...01...1: a prefix mask
        return f"{_ip_text(addr)}/{bits - host.bit_length()}"
    return f"{_ip_text(addr)}/{_ip_text(mask)}"


def id_value(id_type: int, data: bytes, where: str, problems: Problems, v2: bool = False) -> str:
    """Readable text for identification data (RFC 2407 4.6.2.1, RFC 7296 3.5)."""
    # (address length, kind) per ID type; IKEv2 keeps 1, 5 and drops 4, 6-8
    fixed = {1: (4, "addr"), 5: (16, "addr")}
    if not v2:
        fixed.update({4: (8, "subnet"), 6: (32, "subnet"), 7: (8, "range"), 8: (32, "range")})
    if id_type in fixed:
        need, kind = fixed[id_type]
        if len(data) != need:
            problems.overrun(where, f"ID type {id_type} needs {need} bytes, has {len(data)}")
            return data.hex()
        if kind == "addr":
            return _ip_text(data)
        half = need // 2
        if kind == "subnet":
            return _subnet_text(data[:half], data[half:])
        return f"{_ip_text(data[:half])}-{_ip_text(data[half:])}"
    if id_type in (2, 3):  # FQDN, USER_FQDN / RFC822_ADDR: ASCII strings
        return data.decode("ascii", "backslashreplace")
    if id_type == 9:  # DER_ASN1_DN
        return der_dn_text(data) or data.hex()
    if v2 and id_type == 13:  # ID_NULL (RFC 7619)
        return ""
    return data.hex()


# ------------------------------------------------------------- SA (IKEv1)
def _v1_transform(el: Element, protocol: int, problems: Problems) -> Transform | None:
    # RFC 2408 3.6: Transform # (1), Transform-Id (1), RESERVED2 (2), SA Attributes
    if problems.short(el.body, 4, el.where, "transform"):
        return None
    number, tid = el.body[0], el.body[1]
    registry, slug = iana.IKEV1_TRANSFORM_IDS_BY_PROTOCOL.get(protocol, ({}, "ipsec-transform-id"))
    if protocol == 1:  # RFC 2409 appendix A: phase-1 attribute classes
        attrs = parse_attributes(el.body[4:], el.where, problems, iana.IKE_ATTRIBUTE_CLASSES,
                                 "ike-attribute", iana.IKE_ATTRIBUTE_VALUES)
    else:  # RFC 2407 4.5: IPsec DOI SA attributes
        attrs = parse_attributes(el.body[4:], el.where, problems, iana.IPSEC_SECURITY_ASSOCIATION_ATTRIBUTES,
                                 "ipsec-attribute", iana.IPSEC_ATTRIBUTE_VALUES)
    return Transform(number, 0, "", tid, name(registry, slug, tid), attrs)


def _v1_proposal(el: Element, problems: Problems) -> Proposal | None:
    # RFC 2408 3.5: Proposal # (1), Protocol-Id (1), SPI Size (1),
    # # of Transforms (1), SPI (SPI Size), then Transform payloads
    body = el.body
    if problems.short(body, 4, el.where, "proposal"):
        return None
    number, protocol, spi_size, count = body[0], body[1], body[2], body[3]
    if problems.short(body, 4 + spi_size, el.where, f"proposal with {spi_size}-byte SPI"):
        return None
    spi = body[4 : 4 + spi_size]
    transforms = []
    start = 4 + spi_size
    first = PAYLOAD_TRANSFORM if len(body) > start else 0  # no bytes, no chain: the count says if any were due
    # RFC 2408 3.6: a transform payload has 8 fixed bytes
    for tel in iter_chain(body, start, len(body), len(body), first, el.where,
                          lambda i, _t: f"{el.where}.transform[{i}]", problems, min_len=8):
        if tel.next not in (0, PAYLOAD_TRANSFORM):
            problems.add("bad_header", tel.where, f"next payload {tel.next} inside a proposal (expected 3 or 0)")
        transform = _v1_transform(tel, protocol, problems)
        if transform is not None:
            transforms.append(transform)
    if count != len(transforms) and not problems.clipped:
        problems.add("bad_header", el.where, f"says {count} transforms, {len(transforms)} found")
    protocol_name = name(iana.IPSEC_SECURITY_PROTOCOL_IDENTIFIERS, "ipsec-protocol-id", protocol)
    return Proposal(number, protocol, protocol_name, spi, tuple(transforms))


def _v1_proposals(buf: bytes, where: str, problems: Problems) -> tuple[Proposal, ...]:
    proposals = []
    first = PAYLOAD_PROPOSAL if buf else 0
    # RFC 2408 3.5: a proposal payload has 8 fixed bytes before its SPI
    for el in iter_chain(buf, 0, len(buf), len(buf), first, where,
                         lambda i, _t: f"{where}.proposal[{i}]", problems, min_len=8):
        if el.next not in (0, PAYLOAD_PROPOSAL):
            problems.add("bad_header", el.where, f"next payload {el.next} inside an SA (expected 2 or 0)")
        proposal = _v1_proposal(el, problems)
        if proposal is not None:
            proposals.append(proposal)
    return tuple(proposals)


def _sa(body: bytes, where: str, problems: Problems) -> dict[str, Any]:
    # RFC 2408 3.4 / RFC 2407 4.6.1: DOI (4), Situation (4 for the IPsec DOI)
    if problems.short(body, 8, where, "SA DOI and situation"):
        return {"data_len": len(body)}
    doi, situation = struct.unpack_from("!II", body)
    fields: dict[str, Any] = {
        "doi": doi,
        "doi_name": name(iana.ISAKMP_DOMAIN_OF_INTERPRETATION, "isakmp-doi", doi),
        "situation": situation,
        "proposals": (),
    }
    if doi in (0, 1) and not situation & ~0x01:
        # SIT_IDENTITY_ONLY: proposals follow at once (RFC 2407 4.6.1)
        fields["proposals"] = _v1_proposals(body[8:], where, problems)
    else:
        # labeled-domain situations (SIT_SECRECY / SIT_INTEGRITY) and other
        # DOIs (GDOI, RFC 6407) lay out the rest differently: keep it raw
        fields["situation_data"] = body[8:]
    return fields


# ------------------------------------------------------- other v1 payloads
def _data(body: bytes, where: str, problems: Problems) -> dict[str, Any]:
    return {"data": body, "data_len": len(body)}


def _opaque(body: bytes, where: str, problems: Problems) -> dict[str, Any]:
    return {"data_len": len(body)}


def _id(body: bytes, where: str, problems: Problems) -> dict[str, Any]:
    # RFC 2407 4.6.2: ID Type (1), Protocol ID (1), Port (2), Identification Data
    if problems.short(body, 4, where, "ID header"):
        return {"data_len": len(body)}
    id_type, protocol, port = struct.unpack_from("!BBH", body)
    data = body[4:]
    return {
        "id_type": id_type,
        "id_type_name": name(iana.IPSEC_IDENTIFICATION_TYPES, "ipsec-id-type", id_type),
        "protocol": protocol,
        "port": port,
        "value": id_value(id_type, data, where, problems),
        "data": data,
    }


def _cert(body: bytes, where: str, problems: Problems) -> dict[str, Any]:
    # RFC 2408 3.9 / 3.10: Cert Encoding or Cert Type (1), then the data
    if problems.short(body, 1, where, "certificate encoding"):
        return {"data_len": 0}
    return {
        "encoding": body[0],
        "encoding_name": name(iana.ISAKMP_CERTIFICATE_ENCODINGS, "isakmp-cert-encoding", body[0]),
        "data_len": len(body) - 1,
        "data": body[1:],
    }


def _notify(body: bytes, where: str, problems: Problems) -> dict[str, Any]:
    # RFC 2408 3.14: DOI (4), Protocol-ID (1), SPI Size (1), Notify Message
    # Type (2), SPI (SPI Size), Notification Data (rest)
    if problems.short(body, 8, where, "notification header"):
        return {"data_len": len(body)}
    doi, protocol, spi_size, ntype = struct.unpack_from("!IBBH", body)
    if problems.short(body, 8 + spi_size, where, f"notification with {spi_size}-byte SPI"):
        spi_size = len(body) - 8
    return {
        "doi": doi,
        "protocol": protocol,
        "protocol_name": name(iana.IPSEC_SECURITY_PROTOCOL_IDENTIFIERS, "ipsec-protocol-id", protocol),
        "spi": body[8 : 8 + spi_size],
        "type": ntype,
        "type_name": name(iana.ISAKMP_NOTIFY_MESSAGE_TYPES, "isakmp-notify-type", ntype),
        "data": body[8 + spi_size :],
    }


def split_spis(buf: bytes, spi_size: int, count: int, where: str, problems: Problems) -> tuple[bytes, ...]:
    """# of SPIs x SPI Size bytes (RFC 2408 3.15, RFC 7296 3.11)."""
    if spi_size == 0:
        if count and not problems.clipped:
            problems.add("bad_header", where, f"{count} SPIs of size 0")
        if buf and not problems.clipped:
            problems.add("trailing_data", where, f"{len(buf)} bytes after 0-byte SPIs")
        return ()
    fitting = min(count, len(buf) // spi_size)
    if len(buf) != count * spi_size and not problems.clipped:
        problems.add("bad_length", where, f"{count} SPIs of {spi_size} bytes need {count * spi_size}, have {len(buf)}")
    return tuple(buf[i * spi_size : (i + 1) * spi_size] for i in range(fitting))


def _delete(body: bytes, where: str, problems: Problems) -> dict[str, Any]:
    # RFC 2408 3.15: DOI (4), Protocol-Id (1), SPI Size (1), # of SPIs (2), SPIs
    if problems.short(body, 8, where, "delete header"):
        return {"data_len": len(body)}
    doi, protocol, spi_size, count = struct.unpack_from("!IBBH", body)
    return {
        "doi": doi,
        "protocol": protocol,
        "protocol_name": name(iana.IPSEC_SECURITY_PROTOCOL_IDENTIFIERS, "ipsec-protocol-id", protocol),
        "spi_size": spi_size,
        "spis": split_spis(body[8:], spi_size, count, where, problems),
    }


def _vid(body: bytes, where: str, problems: Problems) -> dict[str, Any]:
    # RFC 2408 3.16: the Vendor ID is the whole payload body
    return {"data": body, "name": iana.vendor_id_name(body)}


def _nat_d(body: bytes, where: str, problems: Problems) -> dict[str, Any]:
    # RFC 3947 3.2: HASH of (CKY-I | CKY-R | IP | Port), the whole body
    return {"hash": body}


def _nat_oa(body: bytes, where: str, problems: Problems) -> dict[str, Any]:
    # RFC 3947 5.2: ID Type (1), RESERVED (1), RESERVED (2), IPv4 or IPv6 address
    if problems.short(body, 4, where, "NAT-OA header"):
        return {"data_len": len(body)}
    id_type = body[0]
    return {
        "id_type": id_type,
        "id_type_name": name(iana.IPSEC_IDENTIFICATION_TYPES, "ipsec-id-type", id_type),
        "address": id_value(id_type, body[4:], where, problems),
    }


def parse_cfg_attributes(buf: bytes, where: str, problems: Problems, names: Mapping[int, str], slug: str) -> tuple:
    """Configuration attributes as (type, name, value bytes).

    draft-ietf-ipsec-isakmp-mode-cfg-05 3.2 / RFC 7296 3.15.1: AF|R bit +
    type (2), then Length (2) + value, or (IKEv1 TV form) a 2-byte value.
    """
    attrs, off, index = [], 0, 0
    while off < len(buf):
        awhere = f"{where}.attribute[{index}]"
        if len(buf) - off < 4:
            problems.overrun(awhere, f"{len(buf) - off} bytes left, attribute header needs 4")
            break
        af_type, length = struct.unpack_from("!HH", buf, off)
        atype = af_type & 0x7FFF
        if af_type & 0x8000:  # TV (IKEv1 only; IKEv2 calls this bit reserved)
            value = buf[off + 2 : off + 4]
            off += 4
        else:
            value = buf[off + 4 : off + 4 + length]
            if len(value) < length:
                problems.overrun(awhere, f"attribute length {length}, {len(value)} bytes left")
                break
            off += 4 + length
        attrs.append((atype, name(names, slug, atype), bytes(value)))
        index += 1
    return tuple(attrs)


def _attr(body: bytes, where: str, problems: Problems) -> dict[str, Any]:
    # draft-ietf-ipsec-isakmp-mode-cfg-05 3.2: Type (1), RESERVED (1),
    # Identifier (2), Attributes
    if problems.short(body, 4, where, "attribute payload header"):
        return {"data_len": len(body)}
    cfg_type, _, identifier = struct.unpack_from("!BBH", body)
    return {
        "cfg_type": cfg_type,
        "cfg_type_name": name(iana.ISAKMP_CFG_TYPES, "isakmp-cfg-type", cfg_type),
        "identifier": identifier,
        "attributes": parse_cfg_attributes(body[4:], where, problems, iana.ISAKMP_CFG_ATTRIBUTE_TYPES,
                                           "isakmp-cfg-attribute"),
    }


def _cisco_frag(body: bytes, where: str, problems: Problems) -> dict[str, Any]:
    # Cisco IKEv1 fragmentation: Fragment ID (2), Fragment Number (1),
    # Flags (1, 0x01 = last fragment), then a piece of the whole message
    if problems.short(body, 4, where, "fragment header"):
        return {"data_len": len(body)}
    frag_id, number, flags = struct.unpack_from("!HBB", body)
    return {"fragment_id": frag_id, "number": number, "last": bool(flags & 0x01), "data_len": len(body) - 4}


V1_DECODERS: dict[int, Callable[[bytes, str, Problems], dict[str, Any]]] = {
    1: _sa,
    4: _data,  # KE: RFC 2408 3.7, the key exchange data is the whole body
    5: _id,
    6: _cert,
    7: _cert,  # CR: RFC 2408 3.10, Cert. Type (1) + Certificate Authority
    8: _data,  # HASH: RFC 2408 3.11
    9: _data,  # SIG: RFC 2408 3.12
    10: _data,  # NONCE: RFC 2408 3.13
    11: _notify,
    12: _delete,
    13: _vid,
    14: _attr,
    20: _nat_d,
    21: _nat_oa,
    130: _nat_d,
    131: _nat_oa,
    132: _cisco_frag,
}


# Main Mode and Aggressive Mode cannot carry GDOI's SAK/SAT (RFC 3547 uses its
# own GROUPKEY exchanges), so there 15/16 are the NAT-T draft payloads.
DRAFT_NAT_T_EXCHANGES = frozenset((2, 4))


def v1_payload_name(ptype: int, exchange_type: int = 0) -> str:
    if exchange_type in DRAFT_NAT_T_EXCHANGES and ptype in iana.ISAKMP_DRAFT_NAT_T_PAYLOAD_TYPES:
        return iana.ISAKMP_DRAFT_NAT_T_PAYLOAD_TYPES[ptype]
    return name(iana.ISAKMP_PAYLOAD_TYPES, "isakmp-payload-type", ptype)


def _v1_decoder(ptype: int, exchange_type: int) -> Callable[[bytes, str, Problems], dict[str, Any]]:
    if exchange_type in DRAFT_NAT_T_EXCHANGES and ptype in iana.ISAKMP_DRAFT_NAT_T_PAYLOAD_TYPES:
        return _nat_d if ptype == 15 else _nat_oa
    return V1_DECODERS.get(ptype, _opaque)


# ----------------------------------------------------------------- message
def parse_isakmp(data: bytes) -> IkeMessage:
    """Dissect one ISAKMP (IKEv1) message; never raises."""
    data = bytes(data)
    prefix = "isakmp"
    if len(data) < IKE_HEADER_LEN:
        return header_only(data, Anomaly("truncated", f"{prefix}.header",
                                          f"{len(data)} of {IKE_HEADER_LEN} header bytes"))
    hdr = parse_header(data)
    problems = Problems()
    if hdr.major != 1:
        problems.add("bad_header", f"{prefix}.header", f"major version {hdr.major}, expected 1")
    end, declared_end = message_bounds(data, hdr, prefix, problems)

    if hdr.flags & FLAG_ENCRYPTION:
        # RFC 2408 3.1: with the E flag "all payloads following the header are
        # encrypted"; without keys the rest of the message is one opaque block.
        body = data[IKE_HEADER_LEN:end]
        encrypted = Payload(hdr.next_payload, "encrypted", len(body), False,
                            {"first_payload": v1_payload_name(hdr.next_payload, hdr.exchange_type),
                             "data_len": len(body)})
        return build_message(hdr, [encrypted], problems.items, True)

    payloads = _v1_payload_chain(data, IKE_HEADER_LEN, end, declared_end, hdr.next_payload, hdr.exchange_type,
                                 prefix, problems)
    return build_message(hdr, payloads, problems.items, False)


def _v1_payload_chain(data: bytes, start: int, end: int, declared_end: int, first: int, exch: int, prefix: str,
                      problems: Problems) -> list[Payload]:
    """Decode the ISAKMP payload chain in ``data[start:end]`` (RFC 2408 3.2)."""
    payloads = []
    for el in iter_chain(data, start, end, declared_end, first, f"{prefix}.payloads",
                         lambda i, t: f"{prefix}.payload[{i}]({v1_payload_name(t, exch)})", problems):
        problems.clipped = el.clipped
        fields = _v1_decoder(el.type, exch)(el.body, el.where, problems)
        problems.clipped = False
        payloads.append(Payload(el.type, v1_payload_name(el.type, exch), el.length, False, fields))
    return payloads


def parse_isakmp_inner(first_payload: int, data: bytes,
                       exchange_type: int) -> tuple[tuple[Payload, ...], tuple[Anomaly, ...]]:
    """The payload chain inside a decrypted IKEv1 message body; never raises.

    ``first_payload`` is the header's Next Payload, ``data`` everything the
    ciphertext decrypted to, ``exchange_type`` the header's (it decides what
    payload types 15/16 are).  RFC 2409 appendix B pads the plaintext to the
    cipher's block size, and nothing in the message says how much padding
    there is: the chain ends where the last payload's Next Payload is 0
    (RFC 2408 3.2) and whatever follows is padding, not an anomaly.  The
    chain's end is the sum of the payloads' lengths.  Anomalies are placed
    at ``isakmp.decrypted.payload[i](X)``.
    """
    data = bytes(data)
    prefix = "isakmp.decrypted"
    problems = Problems()
    payloads = _v1_payload_chain(data, 0, len(data), len(data), first_payload, exchange_type, prefix, problems)
    # iter_chain reports the bytes after the last payload as trailing data: here they are the padding
    anomalies = tuple(a for a in problems.items if (a.kind, a.where) != ("trailing_data", f"{prefix}.payloads"))
    return tuple(payloads), anomalies
