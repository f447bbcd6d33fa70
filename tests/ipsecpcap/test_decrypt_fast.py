"""The fast way of `ipsecpcap decrypt` (ESP frames found with numpy and opened
directly) writes the same bytes as the keyed decoder frame by frame, binds the
same keys and counts the same failures; and the benchmark generator's
--encrypt capture decrypts, packet for packet, as tshark decrypts it."""
from __future__ import annotations

import functools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import ipsecpcap.decryptpcap as decryptpcap
from ipsecpcap.decryptpcap import _Counted, decrypt_captures
from ipsecpcap.keys import load_keys
from ipsecpcap.reader import open_capture
from ipsecpcap.sacrypto import SaCrypto, SaState

try:
    from reference import ROOT, all_captures
except ImportError:  # pragma: no cover - depends on how pytest was started
    from tests.reference import ROOT, all_captures

KEYED = [c for c in all_captures() if c.keys]
GENERATOR = ROOT / "bench" / "make_bench_pcap.py"


def decrypt(paths, keys, out: Path, fastpath: str, monkeypatch, only=False):
    monkeypatch.setenv("IPSECPCAP_FASTPATH", fastpath)
    crypto = SaCrypto(load_keys(keys))
    stats = decrypt_captures([str(p) for p in paths], crypto, str(out), only_decrypted=only)
    binding = sorted((k, id(st.key) and (st.key.fingerprint if st.key else None), st.decrypted,
                      st.integrity_failures, st.other_failures, st.esn) for k, st in crypto.states.items())
    return out.read_bytes(), stats, binding


def assert_same_both_ways(paths, keys, tmp_path, monkeypatch, only=False):
    fast = decrypt(paths, keys, tmp_path / "fast.pcap", "vector", monkeypatch, only)
    slow = decrypt(paths, keys, tmp_path / "slow.pcap", "packet", monkeypatch, only)
    assert fast[1] == slow[1]
    assert fast[2] == slow[2]
    assert fast[0] == slow[0]
    return slow[1]


@pytest.mark.parametrize("capture", KEYED, ids=lambda c: c.name)
def test_fixture_decrypts_the_same_both_ways(capture, tmp_path, monkeypatch):
    assert_same_both_ways([capture.path], list(capture.keys), tmp_path, monkeypatch)


@pytest.fixture(scope="module")
def encrypted(tmp_path_factory):
    d = tmp_path_factory.mktemp("enc")
    out = d / "enc.pcap"
    subprocess.run([sys.executable, str(GENERATOR), "--count", "6000", "--out", str(out), "--seed", "11",
                    "--encrypt"], check=True, capture_output=True)
    return out, Path(str(out) + ".esp_sa")


def test_encrypted_benchmark_capture_same_both_ways(encrypted, tmp_path, monkeypatch):
    cap, keys = encrypted
    stats = assert_same_both_ways([cap], [keys], tmp_path, monkeypatch)
    assert stats.decrypted > 4000 and stats.failed == 0
    assert_same_both_ways([cap], [keys], tmp_path, monkeypatch, only=True)


def test_encrypted_benchmark_capture_in_small_blocks_same_both_ways(encrypted, tmp_path, monkeypatch):
    """In 64 KiB blocks, most SAs are opened inline from their second block on: many common
    frames a block, counted on their SAs at once (_Counted with numpy)."""
    cap, keys = encrypted
    monkeypatch.setattr(decryptpcap, "open_capture", functools.partial(open_capture, block_bytes=1 << 16))
    counted, flush = [], _Counted.flush

    def counting(self):
        counted.append(self.upto - self.done)
        flush(self)

    monkeypatch.setattr(_Counted, "flush", counting)
    stats = assert_same_both_ways([cap], [keys], tmp_path, monkeypatch)
    assert stats.decrypted > 4000 and max(counted) >= 32


def test_counted_as_verified_one_by_one():
    """_Counted.flush (a few frames one by one; more at once with numpy) leaves every SA as
    SaCrypto.verified does, frame after frame, with the frames of several SAs mixed and
    their sequence numbers out of order."""
    rng = np.random.default_rng(5)
    for frames in (5, 31, 32, 500):
        nums = rng.integers(1, 8, frames)
        seqs = rng.integers(0, 1 << 32, frames)
        mine = [None] + [SaState(decrypted=n, last_seq=int(s)) for n, s in zip(range(7), rng.integers(0, 1 << 32, 7))]
        theirs = [None] + [SaState(decrypted=st.decrypted, last_seq=st.last_seq) for st in mine[1:]]
        counted = _Counted(mine, nums, seqs)
        for upto in (frames // 3, frames // 3, frames):
            counted.upto = upto
            counted.flush()
        crypto = SaCrypto(load_keys([]))
        for n, s in zip(nums.tolist(), seqs.tolist()):
            crypto.verified(theirs[n], s, "ok")
        assert [(st.decrypted, st.last_seq) for st in mine[1:]] == [(st.decrypted, st.last_seq) for st in theirs[1:]]


def test_encrypted_benchmark_capture_as_tshark_decrypts_it(encrypted, tmp_path, monkeypatch):
    """tshark, with the same esp_sa table, decrypts the same frames: the frames whose
    inner UDP packet to port 443 it shows are, by timestamp, the frames of our
    --only-decrypted output, where that packet now stands in clear."""
    import shutil

    if not shutil.which("tshark"):
        pytest.skip("tshark is not installed")
    cap, keys = encrypted
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "esp_sa").write_text(keys.read_text())
    env = {"WIRESHARK_CONFIG_DIR": str(conf), "XDG_CONFIG_HOME": str(conf), "HOME": str(conf),
           "PATH": "/usr/bin:/bin"}

    def times(path, *opts):
        return subprocess.run(["tshark", "-r", str(path), "-n", *opts, "-Y", "udp.dstport == 443", "-T", "fields",
                               "-e", "frame.time_epoch"], env=env, capture_output=True, text=True,
                              check=True).stdout.split()

    theirs = times(cap, "-o", "esp.enable_encryption_decode:TRUE")
    _, stats, _ = decrypt([cap], [keys], tmp_path / "ours.pcap", "vector", monkeypatch, only=True)
    ours = times(tmp_path / "ours.pcap")
    assert stats.decrypted == len(theirs) > 4000
    assert ours == theirs
