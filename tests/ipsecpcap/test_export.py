"""Exports (ipsecpcap.export) and `ipsecpcap analyze -o DIR`: what is written, that it is
what the table commands print, the capture facts against independent tools, all or nothing."""
import csv
import hashlib
import io
import json
import os
import subprocess
from decimal import Decimal

import pytest
from click.testing import CliRunner

import ipsecpcap
from ipsecpcap import dataframes as dfs
from ipsecpcap import export
from ipsecpcap.cli import main

try:
    from reference import tshark as tshark_ref
except ImportError:  # pragma: no cover
    from tests.reference import tshark as tshark_ref

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PUBLIC = os.path.join(ROOT, "fixtures", "public")
CAP = os.path.join(PUBLIC, "arkime", "IKEv2.pcap")  # IPv6 IKEv2 with rekeys, ESP on several SPIs
CAP_B = os.path.join(PUBLIC, "zeek-spicy-ipsec", "ipsec.cap")  # IKEv1 main + quick mode
AGGR = os.path.join(ROOT, "fixtures", "strongswan", "ikev1-aggressive-psk")
CLI_TABLES = {"exchanges": "exchanges", "ike": "ike", "sas": "sas", "child_sas": "child-sas", "flows": "flows",
              "sequence": "sequence", "timeline": "timeline", "findings": "findings"}


def run(*args, input=None):
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def _manifest_frames() -> dict[str, int]:
    with open(os.path.join(PUBLIC, "MANIFEST.tsv"), newline="") as f:
        return {r["path"]: int(r["frames"]) for r in csv.DictReader(f, delimiter="\t")}


@pytest.fixture(scope="module")
def aggressive():
    return ipsecpcap.analyze([os.path.join(AGGR, "capture.pcap")],
                             keys=[os.path.join(AGGR, "esp_sa"), os.path.join(AGGR, "ikev1_decryption_table")])


def test_jsonl_and_csv_are_what_the_table_commands_print(aggressive, tmp_path):
    aggressive.to_json(tmp_path)
    aggressive.to_csv(tmp_path)
    assert sorted(os.listdir(tmp_path)) == sorted([f"{n}.jsonl" for n in dfs.TABLE_NAMES]
                                                  + [f"{n}.csv" for n in dfs.TABLE_NAMES])
    keys = ["--keys", os.path.join(AGGR, "esp_sa"), "--keys", os.path.join(AGGR, "ikev1_decryption_table")]
    cap = os.path.join(AGGR, "capture.pcap")
    for name, cmd in CLI_TABLES.items():
        for fmt in ("jsonl", "csv"):
            r = run(cmd, "--format", fmt, *keys, cap)
            assert r.exit_code in (0, 1), r.output  # findings: 1 when one is at or above --fail-on
            assert (tmp_path / f"{name}.{fmt}").read_text() == r.stdout, (name, fmt)
    assert len((tmp_path / "findings.jsonl").read_text().splitlines()) == len(aggressive.findings) > 0
    acc = list(csv.DictReader(io.StringIO((tmp_path / "accounting.csv").read_text())))
    assert sum(int(r["frames"]) for r in acc) == aggressive.accounting.frames


def test_a_failed_table_write_leaves_no_file(aggressive, tmp_path, monkeypatch):
    def boom(df, name):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(dfs, "arrow_table", boom)
    with pytest.raises(RuntimeError):
        export.write_table(aggressive, "sas", "parquet", tmp_path / "sas.parquet")
    assert os.listdir(tmp_path) == []


def test_output_dir_is_all_or_nothing(aggressive, tmp_path, monkeypatch):
    from ipsecpcap import report

    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")

    def boom(*a, **kw):
        raise RuntimeError("the report failed")

    monkeypatch.setattr(report, "build_pdf", boom)
    with pytest.raises(RuntimeError):
        export.write_output_dir(aggressive, out, paths=[os.path.join(AGGR, "capture.pcap")])
    assert os.listdir(out) == ["notes.txt"]  # nothing half-written, no staging directory left


def _tshark_span(path):
    out = subprocess.run(["tshark", "-r", path, "-T", "fields", "-e", "frame.time_epoch"], capture_output=True,
                         text=True, check=True, env=tshark_ref._env()).stdout.split()
    stamps = [Decimal(x) for x in out]
    return min(stamps), max(stamps), len(stamps)


def test_analyze_output_dir(tmp_path):
    out = tmp_path / "result"
    r = run("analyze", CAP, CAP_B, "-o", str(out))
    assert r.exit_code == 0, r.output
    assert "findings:" in r.stdout and f"wrote 21 files to {out}" in r.stderr
    expected = {f"{n}.{ext}" for n in dfs.TABLE_NAMES for ext in ("parquet", "jsonl")}
    expected |= {"findings.json", "summary.json", "report.pdf"}
    assert set(os.listdir(out)) == expected
    summary = json.loads((out / "summary.json").read_text())
    findings = json.loads((out / "findings.json").read_text())
    assert isinstance(findings, list)
    assert sum(summary["findings"].values()) == len(findings)
    assert summary["version"] == ipsecpcap.__version__ and summary["captures"] == ["IKEv2.pcap", "ipsec.cap"]
    frames = _manifest_frames()
    for facts, path, rel in zip(summary["capture_files"], (CAP, CAP_B), ("arkime/IKEv2.pcap",
                                                                          "zeek-spicy-ipsec/ipsec.cap")):
        with open(path, "rb") as f:
            assert facts["sha256"] == hashlib.sha256(f.read()).hexdigest()
        assert facts["size"] == os.path.getsize(path)
        assert facts["frames"] == frames[rel]  # the manifest's count (tshark's, when the fixture was added)
        if tshark_ref.tshark_available():
            lo, hi, n = _tshark_span(path)
            assert n == facts["frames"]
            assert round(facts["first_seen"], 6) == float(lo) and round(facts["last_seen"], 6) == float(hi)
    assert summary["frames"] == sum(c["frames"] for c in summary["capture_files"])
    sas = dfs.read_parquet(out / "sas.parquet")
    assert sorted(sas.spi) == sorted(json.loads(line)["spi"] for line in (out / "sas.jsonl").read_text().splitlines())
    assert (out / "report.pdf").read_bytes().startswith(b"%PDF-")
    # a second run replaces the files (no staging directory or temporary file left)
    assert run("analyze", CAP, "-o", str(out), "-q").exit_code == 0
    assert set(os.listdir(out)) == expected
    assert json.loads((out / "summary.json").read_text())["captures"] == ["IKEv2.pcap"]


def test_capture_facts_from_the_analysis_are_those_of_its_own_reading():
    """The fast engine notes each capture's frames and time span as it reads it
    (Tracker.capture_reads): -o takes them from there and only hashes the file.
    They are what a reading of its own finds."""
    from ipsecpcap.analysis import analyze

    a = analyze([CAP, CAP_B])
    assert all(r is not None for r in a.tracker.capture_reads)
    assert export.capture_facts([CAP, CAP_B], a) == export.capture_facts([CAP, CAP_B])


def test_summary_of_a_capture_read_from_standard_input(tmp_path):
    with open(CAP_B, "rb") as f:
        data = f.read()
    r = run("analyze", "-", "-o", str(tmp_path), "--format", "json", input=data)
    assert r.exit_code == 0, r.output
    (facts,) = json.loads((tmp_path / "summary.json").read_text())["capture_files"]
    assert facts["sha256"] is None and "not hashed" in facts["note"]
    assert facts["frames"] == _manifest_frames()["zeek-spicy-ipsec/ipsec.cap"]
    assert json.loads(r.stdout)["frames"] == facts["frames"]


def test_an_output_dir_that_cannot_be_made_is_a_usage_error_before_the_analysis(tmp_path):
    (tmp_path / "file").write_text("x")
    r = run("analyze", str(tmp_path / "missing.pcap"), "-o", str(tmp_path / "file" / "sub"))
    assert r.exit_code == 2  # said before the missing capture (exit 3) is even opened
    assert "cannot write to" in r.stderr and "Traceback" not in r.output


def test_sha256_in_pieces_is_the_whole_files(monkeypatch):
    monkeypatch.setattr(export, "HASH_CHUNK", 1000)  # many pieces, the last one short
    for path in (CAP, CAP_B):
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "rb") as f:
            assert export._sha256(f) == hashlib.sha256(data).hexdigest()
        assert os.path.getsize(path) % 1000


def test_tables_written_from_the_records_are_those_of_the_dataframe_view(aggressive, tmp_path):
    """The output directory builds each DataFrame for its write only (records in), the
    notebook view keeps its own: the same Parquet and JSON Lines either way."""
    export.write_tables(aggressive.records, tmp_path / "records", ("parquet", "jsonl"))
    export.write_tables(aggressive, tmp_path / "frames", ("parquet", "jsonl"))
    for name in dfs.TABLE_NAMES:
        a, b = (dfs.read_parquet(tmp_path / d / f"{name}.parquet") for d in ("records", "frames"))
        assert a.equals(b), name
        jsonl = [(tmp_path / d / f"{name}.jsonl").read_bytes() for d in ("records", "frames")]
        assert jsonl[0] == jsonl[1], name
    assert set(aggressive._frames) == set(dfs.TABLE_NAMES)  # the view kept its DataFrames


def test_a_capture_that_cannot_be_hashed_is_a_note_not_a_failure(tmp_path):
    """The captures are hashed in a thread while the tables are written: a capture gone
    by then is said in its facts, and the directory is still written."""
    path = tmp_path / "gone.pcap"
    with open(CAP_B, "rb") as f:
        path.write_bytes(f.read())
    a = ipsecpcap.analyze([str(path)])
    path.unlink()
    written = export.write_output_dir(a.records, tmp_path / "out", paths=[str(path)], report=False)
    assert len(written) == 2 * len(dfs.TABLE_NAMES) + 2
    (facts,) = json.loads((tmp_path / "out" / "summary.json").read_text())["capture_files"]
    assert facts["sha256"] is None and facts["note"] == "cannot read: No such file or directory"
