"""The intended IPsec policy (``--policy FILE``): what should have been true on the wire.

A policy names the protected hosts -- the servers that "Require Security" --
and, for each, what it requires::

    protected:                      # servers that "Require Security"
      - name: Wood-Acct-01
        hosts: [10.0.5.10, 10.0.6.0/24]
        require: encrypt            # encrypt (ESP with a real cipher) | sign (AH or ESP) | ipsec (any)
        exempt: [udp/500, udp/4500] # IKE is always exempt; list more (e.g. tcp/88) where policy allows
        pfs: session                # none | session (every child SA with its own KE) | master
        allow_ports: [tcp/23]       # optional: plaintext allowed only here ("permit")

Ports are written ``proto/port`` or ``proto/low-high`` (``tcp/1024-65535``),
or a bare protocol (``icmp``, ``icmpv6``, ``udp``: every port).  An
exemption or an allowed port matches a flow when the protected host's own
port (its service port) or the peer's port matches.  IKE (UDP 500 and 4500)
is exempt whether listed or not.

Every mistake is a :class:`PolicyError` naming the file and line; the rules
(``ipsecpcap.rules``) consult the loaded :class:`Policy` only through
:meth:`Policy.entry_for`.
"""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from functools import lru_cache

import yaml

from .errors import UsageError

REQUIRE = ("encrypt", "sign", "ipsec")
PFS = ("none", "session", "master")
PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1, "ipv6-icmp": 58, "icmpv6": 58, "sctp": 132, "gre": 47,
             "esp": 50, "ah": 51}
ALWAYS_EXEMPT = ("udp/500", "udp/4500")
ENTRY_KEYS = ("name", "hosts", "require", "exempt", "pfs", "allow_ports")


class PolicyError(UsageError):
    """A policy file that cannot be read or has a mistake (file:line: what); exit code 2."""


@dataclass(frozen=True, slots=True)
class PortSpec:
    """``tcp/80``, ``udp/1024-65535`` or a bare protocol (every port)."""

    proto: str  # as the flows table names it: tcp, udp, icmp, icmpv6, ...
    low: int | None = None  # None: every port
    high: int | None = None

    def matches(self, proto: str, port: int | None) -> bool:
        if proto != self.proto:
            return False
        if self.low is None:
            return True
        return port is not None and self.low <= port <= self.high

    def __str__(self) -> str:
        if self.low is None:
            return self.proto
        return f"{self.proto}/{self.low}" + (f"-{self.high}" if self.high != self.low else "")


@dataclass(frozen=True, slots=True)
class Protected:
    """One protected host (or group of hosts) and what it requires."""

    name: str
    hosts: tuple  # of ipaddress networks
    require: str = "encrypt"
    exempt: tuple[PortSpec, ...] = ()
    pfs: str = "none"
    allow_ports: tuple[PortSpec, ...] = ()
    line: int = 0  # where it is defined in the policy file

    def covers(self, addr: str | None) -> bool:
        ip = _address(addr) if addr else None
        if ip is None:
            return False
        return any(ip.version == n.version and ip in n for n in self.hosts)

    def exempts(self, proto: str, *ports: int | None) -> bool:
        """Plaintext of this protocol and port(s) is allowed by the exemptions or ``allow_ports``."""
        specs = self.exempt + self.allow_ports
        return any(s.matches(proto, p) for s in specs for p in (ports or (None,)))

    def to_dict(self) -> dict:
        return {"name": self.name, "hosts": [str(h) for h in self.hosts], "require": self.require,
                "exempt": [str(p) for p in self.exempt], "pfs": self.pfs,
                "allow_ports": [str(p) for p in self.allow_ports]}


@lru_cache(maxsize=1 << 16)
def _address(text: str):
    """The parsed address, or None when ``text`` is not one.  The rules ask about the same
    few thousand addresses for every flow of a capture (tens of thousands): parsed once."""
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


_UNSEEN = object()


@dataclass(frozen=True, slots=True)
class Policy:
    protected: tuple[Protected, ...] = ()
    source: str | None = None  # the file it came from
    # address -> the first entry that covers it (or None), filled as the rules ask
    _first: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def entry_for(self, *addrs: str | None) -> Protected | None:
        """The first entry that covers any of ``addrs`` (in the order given)."""
        first = self._first
        for a in addrs:
            e = first.get(a, _UNSEEN)
            if e is _UNSEEN:
                e = first[a] = next((p for p in self.protected if p.covers(a)), None)
            if e is not None:
                return e
        return None

    def to_dict(self) -> dict:
        return {"source": self.source, "protected": [p.to_dict() for p in self.protected]}


def load_policy(path) -> Policy:
    """Read and check a policy file; :class:`PolicyError` (file:line: what) on any mistake."""
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise PolicyError(f"{name}: no such policy file") from None
    except IsADirectoryError:
        raise PolicyError(f"{name}: is a directory, not a policy file") from None
    except UnicodeDecodeError:
        raise PolicyError(f"{name}: not a text (UTF-8) file") from None
    except OSError as e:
        raise PolicyError(f"{name}: cannot read: {e.strerror or e}") from None
    return parse_policy(text, name)


def parse_policy(text: str, name: str = "<policy>") -> Policy:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        line = mark.line + 1 if mark is not None else 1
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise PolicyError(f"{name}:{line}: not valid YAML: {problem}") from None

    def fail(node, msg):
        line = node.start_mark.line + 1 if node is not None else 1
        raise PolicyError(f"{name}:{line}: {msg}")

    if root is None:
        fail(None, "empty policy file (expected a mapping with 'protected:')")
    if not isinstance(root, yaml.MappingNode):
        fail(root, "a policy is a mapping with a 'protected:' list")
    top = _mapping(root, fail)
    for k, (knode, _) in top.items():
        if k != "protected":
            fail(knode, f"unknown key {k!r} (expected 'protected')")
    if "protected" not in top:
        fail(root, "missing 'protected:' (the list of protected hosts)")
    plist = top["protected"][1]
    if not isinstance(plist, yaml.SequenceNode):
        fail(plist, "'protected' must be a list of entries")
    entries = []
    names = set()
    for item in plist.value:
        if not isinstance(item, yaml.MappingNode):
            fail(item, "each protected entry is a mapping (name, hosts, require, ...)")
        m = _mapping(item, fail)
        for k, (knode, _) in m.items():
            if k not in ENTRY_KEYS:
                fail(knode, f"unknown key {k!r} in a protected entry (expected one of {', '.join(ENTRY_KEYS)})")
        if "hosts" not in m:
            fail(item, "a protected entry needs 'hosts' (addresses or networks)")
        ename = _scalar(m["name"][1], fail, "name") if "name" in m else f"entry {len(entries) + 1}"
        if ename in names:
            fail(m["name"][1], f"duplicate entry name {ename!r}")
        names.add(ename)
        hosts = tuple(_network(n, fail) for n in _list(m["hosts"][1], fail, "hosts"))
        if not hosts:
            fail(m["hosts"][1], "'hosts' is empty")
        require = _choice(m, "require", REQUIRE, "encrypt", fail)
        pfs = _choice(m, "pfs", PFS, "none", fail)
        exempt = [_port(n, fail) for n in _list(m["exempt"][1], fail, "exempt")] if "exempt" in m else []
        for always in ALWAYS_EXEMPT:
            spec = _port_text(always)
            if spec not in exempt:
                exempt.append(spec)
        allow = tuple(_port(n, fail) for n in _list(m["allow_ports"][1], fail, "allow_ports")) \
            if "allow_ports" in m else ()
        entries.append(Protected(ename, hosts, require, tuple(exempt), pfs, allow, item.start_mark.line + 1))
    return Policy(tuple(entries), name)


def _mapping(node, fail) -> dict:
    out = {}
    for k, v in node.value:
        if not isinstance(k, yaml.ScalarNode):
            fail(k, "keys must be plain words")
        if k.value in out:
            fail(k, f"duplicate key {k.value!r}")
        out[k.value] = (k, v)
    return out


def _scalar(node, fail, what) -> str:
    if not isinstance(node, yaml.ScalarNode) or node.value == "":
        fail(node, f"'{what}' must be a single value")
    return node.value


def _list(node, fail, what) -> list:
    if isinstance(node, yaml.ScalarNode):  # one value written without brackets
        return [node]
    if not isinstance(node, yaml.SequenceNode):
        fail(node, f"'{what}' must be a list")
    return node.value


def _choice(m, key, choices, default, fail) -> str:
    if key not in m:
        return default
    v = _scalar(m[key][1], fail, key).lower()
    if v not in choices:
        fail(m[key][1], f"{key}: {v!r} is not one of {', '.join(choices)}")
    return v


def _network(node, fail):
    text = _scalar(node, fail, "hosts")
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        fail(node, f"hosts: {text!r} is not an IP address or network (e.g. 10.0.5.10 or 10.0.6.0/24)")


def _port(node, fail) -> PortSpec:
    text = _scalar(node, fail, "port")
    spec = _port_text(text)
    if spec is None:
        fail(node, f"{text!r} is not a port (write proto/port, proto/low-high or a protocol: tcp/88, "
                   f"udp/1024-65535, icmp)")
    return spec


def _port_text(text: str) -> PortSpec | None:
    proto, _, port = text.strip().lower().partition("/")
    if proto == "ipv6-icmp":
        proto = "icmpv6"  # as the flows table names it
    if proto not in PROTOCOLS:
        return None
    if not port:
        return PortSpec(proto)
    low, _, high = port.partition("-")
    try:
        lo, hi = int(low), int(high or low)
    except ValueError:
        return None
    if not 0 <= lo <= hi <= 65535:
        return None
    return PortSpec(proto, lo, hi)
