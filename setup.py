"""Builds the one optional C module, ipsecpcap._walk (the record walks of classic pcap and pcapng).

Everything else is in pyproject.toml.  The module is optional (``optional=True``:
setuptools warns instead of failing when it cannot be compiled, e.g. without a C
compiler or the Python headers), and the reader then uses its pure-Python walk
(same results, slower; see ipsecpcap/_walk.c for why the module exists).
"""
from setuptools import Extension, setup

setup(
    ext_modules=[Extension("ipsecpcap._walk", ["ipsecpcap/_walk.c"],
                           extra_compile_args=["-O2", "-ffp-contract=off"], optional=True)],
)
