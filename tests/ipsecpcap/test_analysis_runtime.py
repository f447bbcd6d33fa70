"""How the analysis treats the interpreter around the read and the tables: the garbage
collector's thresholds, and giving the C heap's free pages back."""
import ctypes
import gc

from ipsecpcap import analysis
from ipsecpcap.analysis import Analysis, analyze

CAPTURE = "fixtures/strongswan/ikev2-cbc-rekey/capture.pcap"


def test_tables_are_built_with_young_collections_only(monkeypatch):
    """While a table of Analysis is built the collector runs young collections only (no full
    one), and the thresholds are as they were afterwards."""
    seen = []
    real = analysis.flow_table

    def flow_table(tr):
        seen.append(gc.get_threshold())
        return real(tr)

    monkeypatch.setattr(analysis, "flow_table", flow_table)
    before = gc.get_threshold()
    a = analyze(CAPTURE)
    assert isinstance(a, Analysis) and a.flows is a.flows
    assert len(seen) == 1
    young, _, old = seen[0]
    assert young >= 50_000 and old == 1 << 30
    assert gc.get_threshold() == before


class _Libc:
    """A C library whose malloc_trim records its calls (a function, as ctypes gives one:
    its ``argtypes`` can be set)."""

    def __init__(self):
        self.calls = []

        def malloc_trim(pad):
            self.calls.append(pad)
            return 1

        self.malloc_trim = malloc_trim


def test_free_pages_given_back_after_the_read(monkeypatch):
    """analyze() asks the C library to give back the free pages of its heap once, after the
    read, where there is a malloc_trim; without one (not glibc), nothing happens."""
    libc = _Libc()
    monkeypatch.setattr(ctypes, "CDLL", lambda name: libc)
    analyze(CAPTURE)
    assert libc.calls == [0]

    monkeypatch.setattr(ctypes, "CDLL", lambda name: object())  # no malloc_trim
    analyze(CAPTURE)

    def no_library(name):
        raise OSError("no C library")

    monkeypatch.setattr(ctypes, "CDLL", no_library)
    analyze(CAPTURE)
