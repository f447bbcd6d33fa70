"""SaCrypto's address matching: a key's source / destination (one host, a prefix, any)
against the addresses of a packet, as ipaddress decides it."""
from __future__ import annotations

import ipaddress

import pytest

from ipsecpcap.sacrypto import _addr_ok

V4, V6 = ipaddress.ip_address("192.0.2.7").packed, ipaddress.ip_address("2001:db8::7").packed


@pytest.mark.parametrize("spec,addr,ok", [
    (None, V4, True),                     # no address in the key: any
    ("192.0.2.7", V4, True),              # one host
    ("192.0.2.8", V4, False),
    ("192.0.2.7/32", V4, True),           # one host, written as a prefix
    ("192.0.2.0/24", V4, True),           # a prefix
    ("192.0.3.0/24", V4, False),
    ("2001:db8::7", V6, True),
    ("2001:db8::/32", V6, True),
    ("2001:db8::7", V4, False),           # another family
    ("192.0.2.7", V6, False),
    ("0.0.0.0/0", V6, False),
    ("not an address", V4, False),
])
def test_addr_ok(spec, addr, ok):
    assert _addr_ok(spec, addr) is ok
    assert _addr_ok(spec, addr) is ok  # parsed once, then from the cache: the same answer
    if spec is not None and "/" not in spec and spec != "not an address":
        # a host is matched by its packed bytes: the same answer as ipaddress gives
        a = ipaddress.ip_address(addr)
        assert ok == (a == ipaddress.ip_address(spec))
