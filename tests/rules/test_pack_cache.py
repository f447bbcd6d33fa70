"""rules/pack.json, the parsed built-in rule files: fresh, exact, and never trusted
for a file whose bytes changed.  The reference is PyYAML's own parse of each file."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys

import pytest
import yaml

from ipsecpcap.rules import engine
from ipsecpcap.rules.engine import BUILTIN_DIR, PACK_CACHE, load_rule_file, load_rules

RULE_FILES = sorted(p for p in BUILTIN_DIR.iterdir() if p.suffix in (".yml", ".yaml"))


def _kinds(x):
    """The value with the type of every leaf beside it (so 1, 1.0, True and "1" differ)."""
    if isinstance(x, dict):
        return {k: _kinds(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_kinds(v) for v in x]
    return (type(x).__name__, x)


def test_the_cache_holds_every_rule_file_as_yaml_reads_it():
    files = json.loads(PACK_CACHE.read_text(encoding="utf-8"))["files"]
    stale = [p.name for p in RULE_FILES
             if files.get(p.name, {}).get("sha256") != hashlib.sha256(p.read_bytes()).hexdigest()]
    assert not stale, (f"rules/pack.json is stale for {stale}: run python -c \"from ipsecpcap.rules.engine "
                       f"import write_pack_cache; write_pack_cache()\"")
    assert set(files) == {p.name for p in RULE_FILES}
    for p in RULE_FILES:
        want = yaml.safe_load(p.read_text(encoding="utf-8"))
        assert _kinds(files[p.name]["data"]) == _kinds(want), p.name
        assert list(files[p.name]["data"]) == list(want), p.name  # key order too


def _rule_fields(rule):
    return {k: getattr(rule, k) for k in rule.__dataclass_fields__}


def test_rules_from_the_cache_equal_rules_from_yaml(monkeypatch):
    from_cache = [_rule_fields(engine._load_rule_file(p, builtin=True)) for p in RULE_FILES]
    monkeypatch.setattr(engine, "_PACK", {})
    from_yaml = [_rule_fields(engine._load_rule_file(p, builtin=True)) for p in RULE_FILES]
    assert _kinds(from_cache) == _kinds(from_yaml)


def test_a_changed_file_is_read_from_its_yaml(monkeypatch):
    path = RULE_FILES[0]
    entry = json.loads(PACK_CACHE.read_text(encoding="utf-8"))["files"][path.name]
    # the cache says something else under another hash: the file's own YAML wins
    entry = dict(entry, sha256="0" * 64, data=dict(entry["data"], title="not the title"))
    monkeypatch.setattr(engine, "_PACK", {path.name: entry})
    assert engine._load_rule_file(path, builtin=True).title == yaml.safe_load(path.read_text())["title"].strip()
    # under the file's own hash it is believed (which is why the hash is of the whole file)
    entry["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()
    assert engine._load_rule_file(path, builtin=True).title == "not the title"


def test_a_missing_or_broken_cache_only_costs_time(tmp_path, monkeypatch):
    want = [_rule_fields(r) for r in load_rules()]
    for content in (None, "{not json", '{"files": 3}'):
        cache = tmp_path / "pack.json"
        if content is not None:
            cache.write_text(content)
        monkeypatch.setattr(engine, "PACK_CACHE", cache)
        monkeypatch.setattr(engine, "_PACK", None)
        monkeypatch.setattr(engine, "_CACHE", {})
        assert [_rule_fields(r) for r in load_rules()] == want


def test_write_pack_cache_round_trips(tmp_path, monkeypatch):
    out = tmp_path / "pack.json"
    engine.write_pack_cache(out)
    assert json.loads(out.read_text(encoding="utf-8"))["files"] == \
        json.loads(PACK_CACHE.read_text(encoding="utf-8"))["files"]


def test_rule_file_outside_the_pack_is_never_taken_from_the_cache(tmp_path):
    src = RULE_FILES[0]
    copy = tmp_path / src.name
    copy.write_bytes(src.read_bytes().replace(b"title: ", b"title: Copy of ", 1))
    assert load_rule_file(copy).title.startswith("Copy of ")


@pytest.mark.parametrize("code", [
    "import ipsecpcap.cli; from ipsecpcap.rules.engine import load_rules; load_rules()",
])
def test_loading_the_pack_does_not_import_yaml(code):
    out = subprocess.run([sys.executable, "-c", code + "; import sys; print('yaml' in sys.modules)"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
