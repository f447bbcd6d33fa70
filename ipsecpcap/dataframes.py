"""The notebook view: the analysis tables as pandas DataFrames with proper dtypes.

    >>> import ipsecpcap
    >>> a = ipsecpcap.analyze(["capture.pcapng"], keys=["esp_sa"])
    >>> a.sas[a.sas.protocol == "esp"].groupby("dst").packets.sum()

:class:`Analysis` wraps the record-level :class:`ipsecpcap.analysis.Analysis`
(``.records``) and turns each record list into a DataFrame on first access:
DataFrames are built at this boundary only, from the same frozen records the
command line prints.  Nothing here decides anything.

Column dtypes come from the record's type hints (``record_schema``) and two
name lists (``TIME_FIELDS``, ``CATEGORY_FIELDS``), so a table has the same
dtypes whether it is empty or not:

===========================================  ================================
record field                                  DataFrame dtype
===========================================  ================================
``int``                                       ``int64``
``int | None``                                ``Int64`` (nullable)
``float`` epoch seconds (``TIME_FIELDS``)     ``datetime64[ns, UTC]``, rounded
                                              to the microsecond (NaT for None)
other ``float``                               ``float64`` (seconds, rates)
``bool``                                      ``bool``
``bool | None``                               ``boolean`` (nullable)
``str`` naming one of a few values            ``category`` (``severity``:
(``CATEGORY_FIELDS``)                         ordered info < ... < critical)
other ``str`` (SPIs, addresses, SA ids)       ``string``
``list[str]``, ``list[int]``                  object: Python lists
``dict``, ``list[dict]``                      object: Python dicts / lists
===========================================  ================================

Parquet (:func:`to_parquet`, :func:`read_parquet`): scalar columns keep
their dtype through pyarrow's pandas metadata (categories as dictionaries,
``Int64``/``boolean`` as nullable columns, timestamps as
``timestamp[ns, tz=UTC]``), so plain ``pandas.read_parquet`` gets them back.
List columns are Parquet lists (``list<string>``, ``list<int64>``); mapping
columns (``exchanges``, ``next_headers``, ``evidence``) and ``seq_events``
(a list of mappings) are JSON text, and the file's metadata names them
(``ipsecpcap.json_columns``).  :func:`read_parquet` restores all of it to
exactly the DataFrame that was written (lists as lists, mappings as dicts);
``pandas.read_parquet`` gives numpy arrays for the lists and text for the
JSON columns.
"""
from __future__ import annotations

import json
import os
import types
import typing
from dataclasses import fields

import numpy as np
import pandas as pd

from . import analysis as _analysis
from .lifecycle import ROW_FIELDS as TIMELINE_FIELDS
from .records import (SCHEMA_VERSION, SEVERITIES, ChildSaRow, ExchangeRow, FindingRow, FlowRow, IkeSaRow,
                      SaRow)
from .sequence import SequenceEventRow, sequence_rows

# float fields holding epoch seconds (UTC); other floats are durations or rates
TIME_FIELDS = frozenset({"ts", "first_seen", "last_seen", "created", "deleted", "established", "first_packet",
                         "last_packet", "start", "end"})
# str fields naming one of a few values: categoricals
CATEGORY_FIELDS = frozenset({"protocol", "severity", "rule", "exchange", "state", "mode", "enc", "integ", "prf",
                             "auth_method", "proto", "created_by", "established_by", "decryption", "kind", "type",
                             "capture", "last_capture", "original_capture"})
SEVERITY_DTYPE = pd.CategoricalDtype(list(SEVERITIES), ordered=True)

# dtype kinds of a column spec
INT, INT_NA, FLOAT, TIME, BOOL, BOOL_NA, CATEGORY, STRING, LIST_STR, LIST_INT, JSON = (
    "int64", "Int64", "float64", "datetime64[ns, UTC]", "bool", "boolean", "category", "string",
    "list<string>", "list<int64>", "json")


def _kind(name: str, hint) -> str:
    """The column kind of one record field, from its type hint."""
    args = typing.get_args(hint)
    nullable = isinstance(hint, types.UnionType) and type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if nullable else hint
    origin = typing.get_origin(base) or base
    if origin is bool:
        return BOOL_NA if nullable else BOOL
    if origin is int:
        return INT_NA if nullable else INT
    if origin is float:
        return TIME if name in TIME_FIELDS else FLOAT
    if origin is str:
        return CATEGORY if name in CATEGORY_FIELDS else STRING
    if origin is list:
        (item,) = typing.get_args(base) or (object,)
        if item is str:
            return LIST_STR
        if item is int:
            return LIST_INT
        return JSON
    if origin is dict:
        return JSON
    raise TypeError(f"no column kind for {name}: {hint!r}")  # pragma: no cover - a new record field type


def record_schema(cls) -> dict[str, str]:
    """``{field: column kind}`` of a record class, in field order."""
    hints = typing.get_type_hints(cls)
    return {f.name: _kind(f.name, hints[f.name]) for f in fields(cls)}


# the flat timeline rows (ipsecpcap.lifecycle.Timeline.rows): bars and events in one table
TIMELINE_SCHEMA = {"type": CATEGORY, "kind": CATEGORY, "start": TIME, "end": TIME, "frame": INT_NA,
                   "protocol": CATEGORY, "sa": STRING, "src": STRING, "dst": STRING, "ike_sa": STRING,
                   "child_sa": STRING, "packets": INT_NA, "related": STRING, "inferred": BOOL_NA,
                   "capture": CATEGORY}
assert list(TIMELINE_SCHEMA) == TIMELINE_FIELDS
# the frame accounting, one row per category ("analysed:esp", "skipped:<reason>", ...)
ACCOUNTING_SCHEMA = {"status": CATEGORY, "category": STRING, "frames": INT}

SCHEMAS: dict[str, dict[str, str]] = {
    "exchanges": record_schema(ExchangeRow),
    "ike": record_schema(IkeSaRow),
    "sas": record_schema(SaRow),
    "child_sas": record_schema(ChildSaRow),
    "sequence": record_schema(SequenceEventRow),
    "timeline": TIMELINE_SCHEMA,
    "flows": record_schema(FlowRow),
    "findings": record_schema(FindingRow),
    "accounting": ACCOUNTING_SCHEMA,
}
TABLE_NAMES = tuple(SCHEMAS)


def table_rows(records: _analysis.Analysis, name: str) -> list:
    """The rows of one table: records, or dicts for ``timeline`` and ``accounting``."""
    if name == "timeline":
        return records.timeline().rows()
    if name == "sequence":
        return sequence_rows(records.sas, records.tracker.captures)
    if name == "accounting":
        return accounting_rows(records.accounting)
    return records.table(name)


def accounting_rows(acc) -> list[dict]:
    return [{"status": cat.split(":", 1)[0], "category": cat, "frames": n} for cat, n in acc.by_category.items()]


def _column(values: list, kind: str, name: str) -> pd.Series:
    if kind == TIME:
        return _time_column(values)
    if kind == CATEGORY:
        if name == "severity":
            return pd.Series(pd.Categorical(values, dtype=SEVERITY_DTYPE))
        cats = pd.Index(sorted({v for v in values if v is not None}), dtype=STRING)
        return pd.Series(pd.Categorical(values, categories=cats))
    if kind in (LIST_STR, LIST_INT, JSON):
        s = pd.Series(np.empty(len(values), dtype=object))
        s[:] = [list(v) if isinstance(v, (list, tuple)) else v for v in values]
        return s
    if kind == FLOAT:
        return pd.Series([np.nan if v is None else v for v in values], dtype=FLOAT)
    return pd.Series(pd.array(values, dtype=kind))


def _time_column(values: list) -> pd.Series:
    # float epoch seconds hold about a quarter of a microsecond at today's epoch;
    # rounded to the microsecond, a pcap's own value comes back exactly
    us = np.array([np.iinfo(np.int64).min if v is None else round(v * 1e6) for v in values], dtype=np.int64)
    return pd.Series(us.astype("datetime64[us]")).dt.tz_localize("UTC").astype(TIME)


def frame(rows: list, schema: dict[str, str]) -> pd.DataFrame:
    """A DataFrame of rows (records or dicts) with the schema's dtypes."""
    if rows and not isinstance(rows[0], dict):
        cols = {name: [getattr(r, name) for r in rows] for name in schema}
    else:
        cols = {name: [r.get(name) for r in rows] for name in schema}
    data = {}
    for name, kind in schema.items():
        data[name] = _column(cols[name], kind, name)
    return pd.DataFrame(data, index=pd.RangeIndex(len(rows)))


def table_frame(records: _analysis.Analysis, name: str) -> pd.DataFrame:
    return frame(table_rows(records, name), SCHEMAS[name])


class Analysis:
    """The analysis as DataFrames (see the module docstring for the dtypes).

    ``records`` is the record-level :class:`ipsecpcap.analysis.Analysis` the
    command line uses; every DataFrame is built from it on first access.
    """

    def __init__(self, records: _analysis.Analysis, paths: list | None = None):
        self.records = records
        self.paths = list(paths) if paths is not None else None  # the captures as given (for the report)
        self._frames: dict[str, pd.DataFrame] = {}

    def table(self, name: str) -> pd.DataFrame:
        """One table by name (``TABLE_NAMES``; ``child-sas`` also works), built once."""
        name = name.replace("-", "_")
        if name not in SCHEMAS:
            raise KeyError(f"no table {name!r} (tables: {', '.join(TABLE_NAMES)})")
        if name not in self._frames:
            self._frames[name] = table_frame(self.records, name)
        return self._frames[name]

    exchanges = property(lambda self: self.table("exchanges"), doc="One row per IKE message.")
    ike = property(lambda self: self.table("ike"), doc="One row per IKE SA (SPI pair).")
    sas = property(lambda self: self.table("sas"), doc="One row per ESP or AH SA direction.")
    child_sas = property(lambda self: self.table("child_sas"), doc="One row per child SA, both directions.")
    sequence = property(lambda self: self.table("sequence"),
                        doc="One row per anti-replay event (the first 100 of each SA direction).")
    timeline = property(lambda self: self.table("timeline"),
                        doc='The SA timeline: bars (type == "bar") and events, in time order.')
    flows = property(lambda self: self.table("flows"), doc="One row per non-IPsec 5-tuple, both directions.")
    findings = property(lambda self: self.table("findings"),
                        doc="What the rule pack found, most severe first; severity is an ordered categorical.")

    @property
    def accounting(self):
        """Where every frame went (:class:`ipsecpcap.analysis.Accounting`)."""
        return self.records.accounting

    @property
    def policy(self):
        return self.records.policy

    def summary(self) -> dict:
        return self.records.summary()

    def key_report(self) -> list[dict]:
        """For each key given: where it came from and what it verified on (by fingerprint)."""
        return self.records.key_report()

    def tables(self) -> dict[str, pd.DataFrame]:
        """Every table by name (``TABLE_NAMES``); ``accounting`` is the frame
        accounting as a table (status, category, frames)."""
        return {name: self.table(name) for name in TABLE_NAMES}

    def to_parquet(self, directory) -> list[str]:
        """Write ``<table>.parquet`` for every table into ``directory``; returns the paths."""
        from .export import write_tables

        return write_tables(self, directory, ("parquet",))

    def to_json(self, directory) -> list[str]:
        """Write ``<table>.jsonl`` (JSON Lines, as ``--format jsonl`` prints) for every table."""
        from .export import write_tables

        return write_tables(self, directory, ("jsonl",))

    def to_csv(self, directory) -> list[str]:
        """Write ``<table>.csv`` (as ``--format csv`` prints) for every table."""
        from .export import write_tables

        return write_tables(self, directory, ("csv",))

    def to_pdf(self, path) -> int:
        """Write the PDF findings report (see :mod:`ipsecpcap.report`); returns its page count."""
        from .report import write_report

        return write_report(self.records, path, paths=self.paths)

    def __repr__(self) -> str:
        s = self.records.summary()
        return (f"<ipsecpcap Analysis of {', '.join(s['captures'])}: {s['frames']} frames, {s['ike_sas']} IKE SAs, "
                f"{s['esp_sas']} ESP / {s['ah_sas']} AH SA directions, {s['flows']} flows>")


def analyze(paths, *, keys=None, policy=None, rules=None, engine: str = "fast", jobs: int = 1,
            progress=None) -> Analysis:
    """Analyse the captures and return the DataFrame view.

    The arguments are those of :func:`ipsecpcap.analysis.analyze`: ``keys``
    (key files or a KeyStore), ``policy`` (a policy file or Policy),
    ``rules`` (extra rule directories), ``engine``, ``jobs``, ``progress``.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = list(paths)
    records = _analysis.analyze(paths, keys=keys, policy=policy, rules=rules, engine=engine, jobs=jobs,
                                progress=progress)
    return Analysis(records, paths)


# ---------------------------------------------------------------- Parquet
META_TABLE = b"ipsecpcap.table"
META_SCHEMA_VERSION = b"ipsecpcap.schema_version"
META_JSON = b"ipsecpcap.json_columns"


def arrow_table(df: pd.DataFrame, name: str):
    """The pyarrow Table written for one of our DataFrames (JSON columns as text)."""
    import pyarrow as pa

    schema = SCHEMAS[name]
    json_cols = [c for c, k in schema.items() if k == JSON]
    out = df.copy(deep=False)
    for c in json_cols:
        out[c] = pd.array([None if v is None else json.dumps(v, sort_keys=False) for v in df[c]], dtype=STRING)
    arrow_types = {LIST_STR: pa.list_(pa.string()), LIST_INT: pa.list_(pa.int64())}
    fields_ = []
    for c, k in schema.items():
        if k in arrow_types:
            fields_.append(pa.field(c, arrow_types[k]))
    table = pa.Table.from_pandas(out, preserve_index=False)
    for f in fields_:  # an empty or all-empty list column has no element type to infer
        i = table.schema.get_field_index(f.name)
        table = table.set_column(i, f, table.column(i).cast(f.type))
    meta = dict(table.schema.metadata or {})
    meta.update({META_TABLE: name.encode(), META_SCHEMA_VERSION: str(SCHEMA_VERSION).encode(),
                 META_JSON: json.dumps(json_cols).encode()})
    return table.replace_schema_metadata(meta)


def restore(df: pd.DataFrame, name: str) -> pd.DataFrame:
    """Give a DataFrame read back from Parquet (or elsewhere) our dtypes again."""
    schema = SCHEMAS[name]
    data = {}
    for c, kind in schema.items():
        col = df[c] if c in df else pd.Series([None] * len(df), dtype=object)
        values = col.tolist()
        if kind == JSON:
            values = [json.loads(v) if isinstance(v, str) else v for v in values]
        elif kind in (LIST_STR, LIST_INT):
            values = [None if v is None else [x.item() if hasattr(x, "item") else x for x in v] for v in values]
        elif kind == TIME:
            data[c] = col.astype(TIME).reset_index(drop=True) if len(col) else _time_column([])
            continue
        elif kind == CATEGORY:
            values = [None if pd.isna(v) else str(v) for v in values]
        elif kind in (INT_NA, BOOL_NA, STRING):
            values = [None if v is pd.NA or v is None or (isinstance(v, float) and np.isnan(v)) else v
                      for v in values]
        data[c] = _column(values, kind, c)
    return pd.DataFrame(data, index=pd.RangeIndex(len(df)))


def read_parquet(path) -> pd.DataFrame:
    """Read a table written by :meth:`Analysis.to_parquet` back with every dtype,
    the lists and the mappings as they were."""
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    meta = table.schema.metadata or {}
    name = meta.get(META_TABLE, b"").decode()
    if name not in SCHEMAS:
        raise ValueError(f"{path}: not a table written by ipsecpcap (no {META_TABLE.decode()} metadata)")
    return restore(table.to_pandas(), name)
