"""Typed records produced by the dissectors.

Every dissector is a pure function ``bytes -> record``.  The records are
frozen dataclasses; a malformed input never raises out of a dissector but is
described by :class:`Anomaly` entries on the record (STYLE.md, "Dissectors").
"""
from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from operator import attrgetter
from reprlib import recursive_repr
from typing import Any, NamedTuple

SCHEMA_VERSION = 1


class _Factory:
    def __repr__(self) -> str:
        return "<factory>"  # as dataclasses shows such a default


_FACTORY = _Factory()


def record(cls):
    """``@dataclass(frozen=True, slots=True)``, made more quickly and with a quicker ``__init__``.

    The ``__init__`` dataclasses writes for a frozen class sets each field
    with ``object.__setattr__``, about 0.2 us a field: 10 us for a 50-field
    table row, and records are made by the ten thousand (payloads,
    attributes, rows).  This one takes the same arguments, defaults
    included, and stores each field through its slot's descriptor, which
    is what ``object.__setattr__`` ends up doing; the instances are as
    frozen as before (their ``__setattr__`` still refuses).  The table rows
    (``ipsecpcap.records``) use it too.

    ``__repr__``, ``__eq__`` and ``__hash__`` do what dataclasses' own do, but
    are closures over ``operator.attrgetter`` rather than source compiled for
    each class: compiling them was most of the 1.2 ms each record class took
    to make, at every start (about 40 classes).
    """
    cls = dataclass(frozen=True, slots=True, init=False, repr=False, eq=False)(cls)
    ns: dict[str, Any] = {"_NEW": _FACTORY}  # the mark of an argument left to its default factory
    params, body = [], []
    for f in fields(cls):
        ns[f"_set_{f.name}"] = cls.__dict__[f.name].__set__
        if f.default is not MISSING:
            ns[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
        elif f.default_factory is not MISSING:
            ns[f"_factory_{f.name}"] = f.default_factory
            params.append(f"{f.name}=_NEW")
            body.append(f"    if {f.name} is _NEW:\n        {f.name} = _factory_{f.name}()\n")
        else:
            params.append(f.name)
        body.append(f"    _set_{f.name}(self, {f.name})\n")
    exec(f"def __init__(self, {', '.join(params)}):\n" + "".join(body), ns)  # noqa: S102 - as dataclasses does
    methods = {"__init__": ns["__init__"], **_value_methods(fields(cls))}
    for name, fn in methods.items():
        fn.__qualname__ = f"{cls.__qualname__}.{name}"
        setattr(cls, name, fn)
    p = cls.__dataclass_params__  # (this class's own) as @dataclass(frozen=True, slots=True) says it
    p.init = p.repr = p.eq = True
    return cls


def _tuple_of(names: list[str]):
    """obj -> the tuple of those attributes (attrgetter alone gives a bare value for one name)."""
    if not names:
        return lambda obj: ()
    if len(names) == 1:
        get = attrgetter(names[0])
        return lambda obj: (get(obj),)
    return attrgetter(*names)


def _value_methods(flds) -> dict:
    """``__repr__``, ``__eq__``, ``__hash__`` as dataclasses writes them for a frozen class
    (dataclasses.py ``_repr_fn``, ``_cmp_fn``, ``_hash_fn``), over the same fields."""
    shown = [f.name for f in flds if f.repr]
    compared = _tuple_of([f.name for f in flds if f.compare])
    hashed = _tuple_of([f.name for f in flds if (f.compare if f.hash is None else f.hash)])

    @recursive_repr()  # "..." for a record inside itself, as dataclasses' _recursive_repr
    def __repr__(self):
        return f"{self.__class__.__qualname__}({', '.join(f'{n}={getattr(self, n)!r}' for n in shown)})"

    def __eq__(self, other):
        if other.__class__ is self.__class__:
            return compared(self) == compared(other)
        return NotImplemented

    def __hash__(self):
        return hash(hashed(self))

    return {"__repr__": __repr__, "__eq__": __eq__, "__hash__": __hash__}


@record
class Anomaly:
    """A problem found while dissecting.

    ``kind`` is one of: ``truncated`` (the data ends before a length says it
    should), ``bad_length`` (a length field is impossible: too small, or
    larger than its container), ``bad_header`` (a field has a value the
    protocol forbids, e.g. an unknown major version), ``trailing_data`` (bytes
    left after a structure that should have ended), ``loop`` (a payload chain
    that does not advance).
    """

    kind: str
    where: str  # e.g. "isakmp.payload[3](N)"
    detail: str = ""


# --------------------------------------------------------------- ESP / AH / NAT-T
@record
class Esp:
    """RFC 4303 section 2: SPI, sequence number, and what follows."""

    spi: int
    seq: int
    payload_len: int  # bytes after SPI and sequence (IV, ciphertext, padding, ICV)
    anomalies: tuple[Anomaly, ...] = ()


@record
class Ah:
    """RFC 4302 section 2."""

    next_header: int
    payload_len: int  # the raw field: header length in 32-bit words minus 2
    header_len: int  # bytes: (payload_len + 2) * 4
    spi: int
    seq: int
    icv_len: int  # header_len - 12
    icv: bytes
    anomalies: tuple[Anomaly, ...] = ()


@record
class NattPayload:
    """What a UDP 4500 payload is (RFC 3948 section 2)."""

    kind: str  # "keepalive" | "ike" | "esp" | "malformed"
    offset: int  # where the IKE header or the ESP SPI starts inside the UDP payload
    anomalies: tuple[Anomaly, ...] = ()


# --------------------------------------------------------------- IKE (both versions)
@record
class Attribute:
    """An SA attribute (ISAKMP data attribute, RFC 2408 section 3.3; IKEv2
    transform attribute, RFC 7296 section 3.3.5)."""

    type: int
    name: str  # registry name, e.g. "Encryption Algorithm", "Key Length"
    value: int | bytes
    value_name: str | None = None  # e.g. "AES-CBC", "MODP-2048"; None when not an enum


@record
class Transform:
    """IKEv1: a Transform payload with its attributes (RFC 2408 3.6, RFC 2409 App. A).
    IKEv2: a Transform substructure (RFC 7296 3.3.2)."""

    number: int  # IKEv1 transform number; IKEv2: 0
    type: int  # IKEv2 transform type (1 ENCR, 2 PRF, 3 INTEG, 4 DH, 5 ESN); IKEv1: 0
    type_name: str  # IKEv2 "ENCR"/"PRF"/"INTEG"/"D-H"/"ESN"/...; IKEv1 ""
    id: int  # IKEv2 transform ID; IKEv1 transform ID (e.g. KEY_IKE = 1, ESP_AES = 12)
    id_name: str
    attributes: tuple[Attribute, ...] = ()


@record
class Proposal:
    number: int
    protocol: int  # 1 ISAKMP/IKE, 2 AH, 3 ESP, 4 IPCOMP (IKEv1) / FC_ESP_HEADER ...
    protocol_name: str
    spi: bytes
    transforms: tuple[Transform, ...] = ()


@record
class TrafficSelector:
    ts_type: int
    ts_type_name: str
    ip_protocol: int
    start_port: int
    end_port: int
    start_addr: str
    end_addr: str


@record
class Payload:
    """One payload of an IKE message.

    ``type`` is the numeric payload type and ``name`` its registry name
    (IKEv1: "SA", "KE", "ID", "CERT", "CR", "HASH", "SIG", "NONCE", "N", "D",
    "VID", "NAT-D", "NAT-OA", ...; IKEv2: "SA", "KE", "IDi", "IDr", "CERT",
    "CERTREQ", "AUTH", "Nonce", "N", "D", "V", "TSi", "TSr", "SK", "CP", "EAP",
    "SKF", ...; unknown: ``unknown-<registry>-<n>``).  ``fields`` holds the
    decoded contents; its keys per payload type are documented in
    ``dissectors/isakmp.py`` and ``dissectors/ikev2.py``.
    """

    type: int
    name: str
    length: int  # the payload length field (generic header included)
    critical: bool = False  # IKEv2 C bit
    fields: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@record
class IkeMessage:
    """An ISAKMP/IKEv1 or IKEv2 message (RFC 2408 3.1, RFC 7296 3.1)."""

    version: int  # major version: 1 or 2 (other values: whatever the header says)
    minor_version: int
    ispi: bytes  # 8 bytes: IKEv1 initiator cookie / IKEv2 SPIi
    rspi: bytes  # 8 bytes
    next_payload: int
    exchange_type: int
    exchange: str  # name, see dissectors.iana
    flags: int
    mid: int
    length: int  # the header's length field
    initiator_flag: bool | None  # IKEv2 I flag; None for IKEv1
    response_flag: bool | None  # IKEv2 R flag; None for IKEv1
    encrypted: bool  # IKEv1 E flag, or IKEv2 SK/SKF present
    payloads: tuple[Payload, ...] = ()
    anomalies: tuple[Anomaly, ...] = ()

    @property
    def payload_names(self) -> list[str]:
        return [p.name for p in self.payloads]


class IkeSummary(NamedTuple):
    """What the analysis keeps of one IKE message: an :class:`IkeMessage`
    without its encrypted payload.

    Without keys the encrypted payload (IKEv2 SK or SKF, RFC 7296 3.14 /
    RFC 7383 2.5; IKEv1's encrypted body, RFC 2408 3.1) says nothing but its
    length, and most messages of a long capture are encrypted: kept as an
    :class:`IkeMessage` each would cost a :class:`Payload` and its dict.  The
    header, the payload names (``payload_names`` lists it), the anomalies and
    the payloads in clear are kept, under the names :class:`IkeMessage` uses,
    so either reads the same.  Whoever decrypts dissects the message again.
    A named tuple: built quickly, small, immutable.
    """

    version: int
    minor_version: int
    ispi: bytes
    rspi: bytes
    next_payload: int
    exchange_type: int
    exchange: str
    flags: int
    mid: int
    length: int
    encrypted: bool
    payload_names: tuple[str, ...]  # every payload, the encrypted one included
    payloads: tuple[Payload, ...]  # the payloads in clear (all of them unless encrypted)
    anomalies: tuple[Anomaly, ...]

    @property
    def initiator_flag(self) -> bool | None:
        """IKEv2 I flag (RFC 7296 3.1); None for IKEv1."""
        return bool(self.flags & 0x08) if self.version == 2 else None

    @property
    def response_flag(self) -> bool | None:
        """IKEv2 R flag; None for IKEv1."""
        return bool(self.flags & 0x20) if self.version == 2 else None

    @classmethod
    def of(cls, msg: "IkeMessage | IkeSummary") -> "IkeSummary":
        """The summary of a dissected message (a summary is returned as it is)."""
        if isinstance(msg, IkeSummary):
            return msg
        names = tuple(p.name for p in msg.payloads)
        payloads = msg.payloads
        if msg.encrypted and payloads and payloads[-1].name in ENCRYPTED_PAYLOADS:
            payloads = payloads[:-1]  # IKEv2 SK/SKF end the chain; IKEv1's body is its only payload
        return cls(msg.version, msg.minor_version, msg.ispi, msg.rspi, msg.next_payload, msg.exchange_type,
                   msg.exchange, msg.flags, msg.mid, msg.length, msg.encrypted, names, payloads, msg.anomalies)


# the names of the payload that holds a message's encrypted part: IKEv2 SK and
# SKF; IKEv1's whole body, named "encrypted" by the dissector
ENCRYPTED_PAYLOADS = frozenset(("SK", "SKF", "encrypted"))
