"""The CLI: formats, -o, standard input, exit codes."""
import csv
import gzip
import io
import json
import os
import subprocess
import sys

from click.testing import CliRunner

from ipsecpcap.cli import main
from ipsecpcap.records import ExchangeRow, FlowRow, IkeSaRow, SaRow

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CAP = os.path.join(ROOT, "fixtures", "public", "zeek-spicy-ipsec", "ipsec.cap")  # IKEv1 main+quick, 2 ESP SAs


def run(*args, input=None):
    return CliRunner().invoke(main, list(args), input=input, catch_exceptions=False)


def test_json_is_an_array_with_the_documented_fields():
    for name, cls in (("exchanges", ExchangeRow), ("ike", IkeSaRow), ("sas", SaRow), ("flows", FlowRow)):
        r = run(name, "--format", "json", CAP)
        assert r.exit_code == 0, r.output
        rows = json.loads(r.stdout)
        assert isinstance(rows, list)
        for row in rows:
            assert list(row) == cls.field_names()
    sas = json.loads(run("sas", "--format", "json", CAP).stdout)
    assert sorted((s["spi"], s["packets"]) for s in sas) == [("0x0879355b", 7), ("0x1c0d7b38", 9)]


def test_jsonl_and_csv_agree_with_json():
    j = json.loads(run("exchanges", "--format", "json", CAP).stdout)
    jl = [json.loads(line) for line in run("exchanges", "--format", "jsonl", CAP).stdout.splitlines()]
    assert j == jl and len(j) == 11
    rows = list(csv.DictReader(io.StringIO(run("exchanges", "--format", "csv", CAP).stdout)))
    assert [int(r["frame"]) for r in rows] == [x["frame"] for x in j]
    assert rows[0]["payloads"] == ";".join(j[0]["payloads"])


def test_output_file(tmp_path):
    out = tmp_path / "sas.json"
    r = run("sas", "--format", "json", "-o", str(out), CAP)
    assert r.exit_code == 0 and r.stdout == ""
    assert len(json.loads(out.read_text())) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["sas.json"]  # no temporary file left behind


def test_failed_run_leaves_no_file(tmp_path):
    out = tmp_path / "x.json"
    r = run("sas", "--format", "json", "-o", str(out), str(tmp_path / "missing.pcap"))
    assert r.exit_code == 3 and not out.exists() and list(tmp_path.iterdir()) == []


def test_stdin_pipe_and_gzip(tmp_path):
    gz = tmp_path / "c.pcap.gz"
    with open(CAP, "rb") as f, gzip.open(gz, "wb") as g:
        g.write(f.read())
    direct = run("sas", "--format", "json", CAP).stdout
    with open(gz, "rb") as f:
        p = subprocess.run([sys.executable, "-m", "ipsecpcap.cli", "sas", "--format", "json", "-"],
                           stdin=f, capture_output=True, check=True)
    piped = json.loads(p.stdout)
    for row in piped:
        row["capture"] = row["last_capture"] = "ipsec.cap"
    assert piped == json.loads(direct)


def test_summary_accounting_line():
    r = run("analyze", CAP)
    assert "frames: 27 = 27 analysed + 0 skipped + 0 malformed" in r.stdout
    s = json.loads(run("analyze", "--format", "json", CAP).stdout)
    assert s["accounting"]["by_category"] == {"analysed:esp": 16, "analysed:ike": 11}
    assert (s["ike_sas"], s["esp_sas"], s["esp_packets"]) == (1, 2, 16)


def test_errors_are_one_line_with_documented_codes(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("this is not a capture\n")
    for path, code in ((str(tmp_path / "nope.pcap"), 3), (str(text), 3), (str(tmp_path), 3)):
        p = subprocess.run([sys.executable, "-m", "ipsecpcap.cli", "sas", path], capture_output=True, text=True)
        assert p.returncode == code, (path, p.stderr)
        assert p.stderr.count("\n") == 1 and p.stderr.startswith("ipsecpcap: error: "), p.stderr
    p = subprocess.run([sys.executable, "-m", "ipsecpcap.cli", "sas", "--format", "xml", CAP],
                       capture_output=True, text=True)
    assert p.returncode == 2 and "Traceback" not in p.stderr


def test_key_file_errors_and_key_secrecy(tmp_path):
    """A bad key file: exit 4 and one line naming file and line; no key bytes in any output."""
    secret = "0x" + "5a" * 16
    bad = tmp_path / "esp_sa"
    bad.write_text('"IPv4","10.0.0.1","10.0.0.2","0x1000","AES-CBC [RFC3602]","' + secret + '"\n')
    p = subprocess.run([sys.executable, "-m", "ipsecpcap.cli", "sas", CAP, "--keys", str(bad)],
                       capture_output=True, text=True)
    assert p.returncode == 4 and p.stderr.count("\n") == 1 and "esp_sa:1:" in p.stderr
    assert "5a5a5a5a" not in p.stderr + p.stdout
    unknown = tmp_path / "esp_sa2"
    unknown.write_text('"IPv4","10.0.0.1","10.0.0.2","0x1000","AES-CBC [RFC3602]","' + secret +
                       '","HMAC-SHA-1-96 [RFC2404]","0x' + "77" * 20 + '"\n'
                       '"IPv4","10.0.0.1","10.0.0.2","0x1001","Serpent-CBC","' + secret + '","NULL",""\n')
    for cmd in ("analyze", "sas", "keys"):
        for fmt in ("table", "json"):
            p = subprocess.run([sys.executable, "-m", "ipsecpcap.cli", cmd, CAP, "--keys", str(unknown),
                                "--format", fmt], capture_output=True, text=True)
            assert p.returncode == 0, p.stderr
            assert "5a5a5a5a" not in p.stdout + p.stderr and "77777777" not in p.stdout + p.stderr
            assert "esp_sa2:2" in p.stderr or "esp_sa2:2" in p.stdout  # the unknown algorithm is reported
