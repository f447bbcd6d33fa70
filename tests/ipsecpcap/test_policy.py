"""The policy file: what it accepts, and one line with file:line for every mistake."""
from __future__ import annotations

import pytest

from ipsecpcap.policy import PolicyError, PortSpec, load_policy, parse_policy

EXAMPLE = """\
protected:                      # servers that "Require Security"
  - name: Wood-Acct-01
    hosts: [10.0.5.10, 10.0.6.0/24]
    require: encrypt
    exempt: [udp/500, udp/4500, tcp/88]
    pfs: session
    allow_ports: [tcp/23]
  - name: v6
    hosts: 2001:db8::/64
    require: sign
"""


def test_the_readme_example_parses():
    p = parse_policy(EXAMPLE, "x.yaml")
    a, b = p.protected
    assert (a.name, a.require, a.pfs, a.line) == ("Wood-Acct-01", "encrypt", "session", 2)
    assert a.covers("10.0.5.10") and a.covers("10.0.6.200") and not a.covers("10.0.5.11")
    assert a.exempts("tcp", 88) and a.exempts("tcp", 23) and a.exempts("udp", 500) and not a.exempts("tcp", 80)
    assert b.covers("2001:db8::1") and not b.covers("10.0.5.10") and b.pfs == "none"
    assert p.entry_for("192.0.2.1", "10.0.6.1").name == "Wood-Acct-01"
    assert p.entry_for("192.0.2.1") is None


def test_ike_is_always_exempt():
    p = parse_policy("protected:\n  - hosts: [10.0.0.1]\n", "x.yaml")
    e = p.protected[0]
    assert e.exempts("udp", 500) and e.exempts("udp", 4500) and not e.exempts("udp", 53)
    assert e.require == "encrypt" and e.name == "entry 1"


def test_port_forms():
    p = parse_policy("protected:\n  - hosts: [10.0.0.1]\n    exempt: [tcp/1024-2048, icmp, ipv6-icmp]\n", "x")
    e = p.protected[0]
    assert e.exempts("tcp", 1500) and not e.exempts("tcp", 1023)
    assert e.exempts("icmp", None) and e.exempts("icmpv6", None)
    assert str(PortSpec("tcp", 10, 20)) == "tcp/10-20" and str(PortSpec("icmp")) == "icmp"


@pytest.mark.parametrize("text,line,words", [
    ("protected:\n  - hosts: [10.0.0.1]\n    require: encryptt\n", 3, "require: 'encryptt' is not one of"),
    ("protected:\n  - hosts: [10.0.0.300]\n", 2, "not an IP address or network"),
    ("protected:\n  - hosts: [10.0.0.1]\n    exempt: [tcp/99999]\n", 3, "is not a port"),
    ("protected:\n  - hosts: [10.0.0.1]\n    exempt: [foo/1]\n", 3, "is not a port"),
    ("protected:\n  - name: a\n    require: sign\n", 2, "needs 'hosts'"),
    ("protected:\n  - hosts: [10.0.0.1]\n    pfss: none\n", 3, "unknown key 'pfss'"),
    ("protect:\n  - hosts: [10.0.0.1]\n", 1, "unknown key 'protect'"),
    ("protected:\n  - hosts: [10.0.0.1]\n    pfs: always\n", 3, "pfs: 'always'"),
    ("protected:\n  - name: a\n    hosts: [1.1.1.1]\n  - name: a\n    hosts: [1.1.1.2]\n", 4, "duplicate entry name"),
    ("protected: [\n", 2, "not valid YAML"),
    ("", 1, "empty policy file"),
    ("protected: 3\n", 1, "must be a list"),
    ("- a\n- b\n", 1, "a policy is a mapping"),
])
def test_mistakes_name_the_line(text, line, words):
    with pytest.raises(PolicyError) as e:
        parse_policy(text, "pol.yaml")
    msg = str(e.value)
    assert msg.startswith(f"pol.yaml:{line}: "), msg
    assert words in msg and "\n" not in msg
    assert e.value.exit_code == 2


def test_file_errors(tmp_path):
    with pytest.raises(PolicyError, match="no such policy file"):
        load_policy(tmp_path / "missing.yaml")
    with pytest.raises(PolicyError, match="is a directory"):
        load_policy(tmp_path)
    bad = tmp_path / "bin.yaml"
    bad.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(PolicyError, match="not a text"):
        load_policy(bad)
