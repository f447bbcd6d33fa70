"""The DataFrame view (ipsecpcap.dataframes): dtypes, values against tshark, Parquet round trip."""
import math
import os
import subprocess
import sys
from decimal import Decimal

import pandas as pd
import pytest

import ipsecpcap
from ipsecpcap import dataframes as dfs
from ipsecpcap.records import SEVERITIES

try:
    from reference import tshark as tshark_ref
except ImportError:  # pragma: no cover
    from tests.reference import tshark as tshark_ref

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SS = os.path.join(ROOT, "fixtures", "strongswan")
REKEY = os.path.join(SS, "ikev2-cbc-rekey")  # IKEv2, child and IKE SA rekeys, 8 ESP SAs
AGGR = os.path.join(SS, "ikev1-aggressive-psk")  # IKEv1 aggressive PSK: findings with evidence
REPLAY = os.path.join(ROOT, "fixtures", "synthetic", "esp-replay-gap.pcap")  # sequence events, no flows


def _keys(d):
    return [os.path.join(d, n) for n in ("esp_sa", "ikev2_decryption_table", "ikev1_decryption_table")
            if os.path.exists(os.path.join(d, n))]


@pytest.fixture(scope="module")
def rekey():
    return ipsecpcap.analyze([os.path.join(REKEY, "capture.pcap")], keys=_keys(REKEY))


@pytest.fixture(scope="module")
def aggressive():
    return ipsecpcap.analyze([os.path.join(AGGR, "capture.pcap")], keys=_keys(AGGR))


@pytest.fixture(scope="module")
def replay():
    return ipsecpcap.analyze(REPLAY)


def test_import_ipsecpcap_does_not_import_pandas():
    out = subprocess.run([sys.executable, "-c", "import sys, ipsecpcap; print(sorted(m for m in ('pandas', "
                          "'pyarrow', 'reportlab') if m in sys.modules))"],
                         capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


def test_dtypes(rekey, aggressive):
    ex, sas, ike = rekey.exchanges, rekey.sas, rekey.ike
    assert str(ex.ts.dtype) == "datetime64[ns, UTC]" and str(sas.first_seen.dtype) == "datetime64[ns, UTC]"
    assert ex.frame.dtype == "int64" and sas.packets.dtype == "int64" and sas.bytes.dtype == "int64"
    assert sas.spi.dtype == "string" and ex.ispi.dtype == "string" and sas.src.dtype == "string"
    assert isinstance(sas.protocol.dtype, pd.CategoricalDtype) and isinstance(ex.exchange.dtype, pd.CategoricalDtype)
    assert ike.dh_group.dtype == "Int64" and ike.nat_detected.dtype == "boolean" and sas.udp_encap.dtype == "bool"
    assert sas.loss_rate.dtype == "float64"
    assert all(isinstance(p, list) for p in ex.payloads) and all(isinstance(d, dict) for d in ike.exchanges)
    sev = aggressive.findings.severity.dtype
    assert isinstance(sev, pd.CategoricalDtype) and sev.ordered and list(sev.categories) == list(SEVERITIES)
    assert len(aggressive.findings) and aggressive.findings.severity.max() == "high"


def test_every_table_has_its_schema_dtypes_empty_or_not(rekey, replay):
    kinds = {dfs.INT: "int64", dfs.INT_NA: "Int64", dfs.FLOAT: "float64", dfs.TIME: "datetime64[ns, UTC]",
             dfs.BOOL: "bool", dfs.BOOL_NA: "boolean", dfs.CATEGORY: "category", dfs.STRING: "string",
             dfs.LIST_STR: "object", dfs.LIST_INT: "object", dfs.JSON: "object"}
    assert len(replay.flows) == 0 and len(replay.sequence) > 0  # one empty table, one full one
    for a in (rekey, replay):
        for name, df in a.tables().items():
            schema = dfs.SCHEMAS[name]
            assert list(df.columns) == list(schema), name
            for col, kind in schema.items():
                assert str(df[col].dtype) == kinds[kind], (name, col, df[col].dtype)


def _same(v, d):
    """A record value and the DataFrame cell built from it."""
    if v is None:
        return d is None or d is pd.NA or d is pd.NaT or (isinstance(d, float) and math.isnan(d))
    if isinstance(d, pd.Timestamp):
        return d.value == round(v * 1e6) * 1000
    return v == d


def test_values_are_the_records_the_cli_prints(rekey, replay):
    for a in (rekey, replay):
        for name in dfs.TABLE_NAMES:
            rows = dfs.table_rows(a.records, name)
            df = a.table(name)
            assert len(rows) == len(df), name
            for i, r in enumerate(rows):
                d = r if isinstance(r, dict) else r.to_dict()
                for col in dfs.SCHEMAS[name]:
                    assert _same(d[col], df[col].iat[i]), (name, i, col, d[col], df[col].iat[i])


def _tshark_fields(path, *fields):
    out = subprocess.run(["tshark", "-r", path, "-T", "fields", *sum((["-e", f] for f in fields), [])],
                         capture_output=True, text=True, check=True, env=tshark_ref._env())
    return [line.split("\t") for line in out.stdout.splitlines()]


@pytest.mark.skipif(not tshark_ref.tshark_available(), reason=tshark_ref.SKIP_REASON)
def test_timestamps_spis_and_counts_agree_with_tshark(rekey):
    cap = os.path.join(REKEY, "capture.pcap")
    rows = _tshark_fields(cap, "frame.number", "frame.time_epoch", "isakmp.ispi", "esp.spi")
    epoch = {int(n): pd.Timestamp(int(Decimal(t) * 10**9), unit="ns", tz="UTC") for n, t, _, _ in rows}
    ispi = {int(n): i for n, _, i, _ in rows if i}
    ex = rekey.exchanges
    assert len(ex) == len(ispi)
    for frame, ts, spi in zip(ex.frame, ex.ts, ex.ispi):
        assert ts == epoch[frame] and spi == ispi[frame]
    esp = {}
    for n, _, _, spi in rows:
        if spi:
            esp.setdefault(f"0x{int(spi, 16):08x}", []).append(int(n))
    sas = rekey.sas.set_index("spi")
    assert sorted(sas.index) == sorted(esp)
    for spi, frames in esp.items():
        assert sas.at[spi, "packets"] == len(frames)
        assert sas.at[spi, "first_seen"] == min(epoch[f] for f in frames)
        assert sas.at[spi, "last_seen"] == max(epoch[f] for f in frames)
        assert sas.at[spi, "first_frame"] == min(frames)


@pytest.mark.parametrize("which", ["rekey", "aggressive", "replay"])
def test_parquet_round_trip_keeps_every_dtype(which, request, tmp_path):
    a = request.getfixturevalue(which)
    written = a.to_parquet(tmp_path)
    assert sorted(os.path.basename(p) for p in written) == sorted(f"{n}.parquet" for n in dfs.TABLE_NAMES)
    assert sorted(os.listdir(tmp_path)) == sorted(f"{n}.parquet" for n in dfs.TABLE_NAMES)  # no temporary file left
    for name in dfs.TABLE_NAMES:
        df = a.table(name)
        back = dfs.read_parquet(tmp_path / f"{name}.parquet")
        pd.testing.assert_frame_equal(back, df, check_exact=True, check_categorical=True)
        # plain pandas gets every scalar column's dtype back, the lists as arrays, mappings as JSON text
        plain = pd.read_parquet(tmp_path / f"{name}.parquet")
        for col, kind in dfs.SCHEMAS[name].items():
            if kind in (dfs.LIST_STR, dfs.LIST_INT, dfs.JSON):
                continue
            assert str(plain[col].dtype) == str(df[col].dtype), (name, col)
            if kind == dfs.CATEGORY and len(df):
                assert plain[col].dtype.ordered == df[col].dtype.ordered
                assert list(map(str, plain[col].dtype.categories)) == list(df[col].dtype.categories)


def test_parquet_carries_the_lists_and_mappings(aggressive, replay, tmp_path):
    import pyarrow.parquet as pq

    aggressive.to_parquet(tmp_path / "a")
    replay.to_parquet(tmp_path / "r")
    schema = pq.read_schema(tmp_path / "a" / "exchanges.parquet")
    assert str(schema.field("payloads").type) == "list<element: string>"
    assert str(pq.read_schema(tmp_path / "a" / "findings.parquet").field("frames").type) == "list<element: int64>"
    meta = pq.read_schema(tmp_path / "r" / "sas.parquet").metadata
    assert meta[b"ipsecpcap.table"] == b"sas"
    assert set(eval(meta[b"ipsecpcap.json_columns"])) == {"next_headers", "seq_events"}
    sas = dfs.read_parquet(tmp_path / "r" / "sas.parquet")
    events = [e for evs in sas.seq_events for e in evs]
    assert events and all(isinstance(e, dict) and "kind" in e for e in events)
    f = dfs.read_parquet(tmp_path / "a" / "findings.parquet")
    assert all(isinstance(e, dict) for e in f.evidence) and any(f.evidence)


def test_read_parquet_refuses_a_foreign_file(tmp_path):
    pd.DataFrame({"x": [1]}).to_parquet(tmp_path / "x.parquet")
    with pytest.raises(ValueError, match="not a table written by ipsecpcap"):
        dfs.read_parquet(tmp_path / "x.parquet")


def test_the_view_wraps_the_records(rekey):
    assert rekey.accounting.frames == 434 == rekey.summary()["frames"]
    assert rekey.records.sas[0].spi == rekey.sas.spi.iat[0]
    assert rekey.table("child-sas") is rekey.child_sas
    assert set(rekey.timeline.type) == {"bar", "event"}
    assert "434 frames" in repr(rekey)
    with pytest.raises(KeyError):
        rekey.table("nope")
