"""--jobs 2 (ipsecpcap.parallel) gives what one process gives, table for table."""
from __future__ import annotations

import subprocess
import sys

import pytest

from ipsecpcap.analysis import analyze
from ipsecpcap.errors import InputError

try:
    from reference import ROOT, all_captures
except ImportError:  # pragma: no cover - depends on how pytest was started
    from tests.reference import ROOT, all_captures

from test_vector import synthetic_frames, tables, write_pcap

# a few of every kind: IKEv1 / IKEv2 with rekeys (strongSwan), NAT-T, AH and AH+ESP,
# IPv6 with extension headers, pcapng
WANTED = {"public/tcpdump/espudp1.pcap", "public/zeek-spicy-ipsec/ipsec.cap", "public/arkime/ah-esp.pcap",
          "public/nDPI/ah.pcapng", "public/nDPI/esp.pcapng", "strongswan/ikev2-cbc-rekey/capture.pcap",
          "strongswan/ikev2-rekey-collision/capture.pcap", "strongswan/ikev1-main-quick/capture.pcap",
          "strongswan/ikev2-natt/capture.pcap",
          "public/suricata-verify/ipv6-dos-with-ext-headers-5/denial6-5.pcap",
          "public/wireshark/esp-bug-12671.pcapng.gz", "public/scapy/ikev2_nat_t.pcapng"}
SOME = [c.path for c in all_captures() if c.name in WANTED]


def same(paths, **kw):
    one = analyze(paths, jobs=1, **kw)
    two = analyze(paths, jobs=2, **kw)
    return tables(two.tracker), tables(one.tracker)


@pytest.mark.parametrize("path", SOME, ids=lambda p: p.relative_to(ROOT / "fixtures").as_posix())
def test_fixture_jobs2_same(path):
    two, one = same([path])
    assert two == one


def test_several_captures_jobs2_same():
    two, one = same(SOME[:4])
    assert two == one


@pytest.mark.parametrize("hand_over", [0, 1, 2])
def test_synthetic_jobs2_same(tmp_path, monkeypatch, hand_over):
    import ipsecpcap.parallel as parallel
    import ipsecpcap.vector as vector

    monkeypatch.setattr(vector, "BATCH", 200)  # many batches through the pipe
    # none, every or every second batch grouped by the applier's process
    monkeypatch.setattr(parallel, "HAND_OVER", hand_over)
    path = write_pcap(tmp_path / "s.pcap", synthetic_frames(7))
    two, one = same([path], block_bytes=8192)
    assert two == one
    assert one["accounting"]["frames"] > 5000


def test_input_errors_jobs2_same(tmp_path):
    (tmp_path / "junk.pcap").write_bytes(b"not a capture at all")
    for path in (tmp_path / "nope.pcap", tmp_path / "junk.pcap", tmp_path):
        messages = []
        for jobs in (1, 2):
            with pytest.raises(InputError) as e:
                analyze([path], jobs=jobs)
            messages.append(str(e.value))
        assert messages[0] == messages[1] and str(path) in messages[0]


def test_stdin_jobs2_same_as_file(tmp_path):
    path = write_pcap(tmp_path / "s.pcap", synthetic_frames(8))
    cmd = [sys.executable, "-m", "ipsecpcap.cli", "sas", "--format", "json", "-q"]
    with open(path, "rb") as f:
        piped = subprocess.run(cmd + ["--jobs", "2", "-"], stdin=f, capture_output=True, check=True).stdout
    direct = subprocess.run(cmd + [str(path)], capture_output=True, check=True).stdout
    assert piped.replace(b'"-"', b'"s.pcap"') == direct
