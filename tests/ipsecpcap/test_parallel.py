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
from test_vector_keyed import keyed_result

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


# strongSwan captures with the daemon's keys: ESP opened (AES-CBC, AES-GCM, NULL), rekeys, a
# rekey collision, NAT-T, IKEv1, plaintext beside the tunnel
KEYED = ["ikev2-cbc-rekey", "ikev2-gcm", "ikev2-esp-null", "ikev2-rekey-collision", "ikev2-natt",
         "ikev1-main-quick", "ikev2-plaintext-beside-tunnel"]


def _keyed(name):
    d = ROOT / "fixtures" / "strongswan" / name
    keys = [d / f for f in ("esp_sa", "ikev2_decryption_table", "ikev1_decryption_table") if (d / f).exists()]
    return d / "capture.pcap", keys


@pytest.mark.parametrize("name", KEYED)
def test_keyed_jobs2_same(name):
    """With keys, the child classifies, opens the ESP packets and decodes the rest with the
    keyed decoder, and this process applies what it sent: the same tables, key report and
    per-SA crypto state as one process."""
    path, keys = _keyed(name)
    two, one = keyed_result([path], keys, 2), keyed_result([path], keys, 1)
    assert two == one
    assert sum(d for _, d, _ in one[5]) > 50  # packets were opened


def test_keyed_jobs2_carries_the_crypto_state_from_capture_to_capture():
    """Captures given together share the keys' bindings: the second capture's child starts
    from what the first one's learnt (handed back, then forked again)."""
    path, keys = _keyed("ikev2-cbc-rekey")
    other, more = _keyed("ikev2-gcm")
    paths = [path, other, path]
    assert keyed_result(paths, keys + more, 2) == keyed_result(paths, keys + more, 1)


def test_crypto_state_export_and_adopt_round_trip():
    from ipsecpcap.sacrypto import SaCrypto

    path, keys = _keyed("ikev2-rekey-collision")
    a = analyze([path], keys=keys)
    state = a.crypto.export_state()
    fresh = SaCrypto(a.keys)
    fresh.adopt_state(state)
    assert fresh.export_state() == state
    for sa, st in fresh.states.items():  # the keys are the store's own objects, not copies
        assert st.key is None or any(st.key is k for k in a.keys.esp)
        assert (st.cipher is not None) == (a.crypto.states[sa].cipher is not None)
    assert {id(k) for k in fresh.keys} >= set(fresh.bound)


def test_keyed_jobs2_same_on_every_fixture_with_keys():
    """Every capture published with keys (Wireshark, tcpdump, Openswan, libreswan, scapy,
    packetgen, strongSwan): --jobs 2 with its keys is one process, table for table."""
    keyed = [c for c in all_captures() if c.keys]
    assert len(keyed) > 100
    for c in keyed:
        assert keyed_result([c.path], list(c.keys), 2) == keyed_result([c.path], list(c.keys), 1), c.name
