"""The rule engine: load the rule pack (one YAML file per rule) and evaluate it.

A rule file says what a finding is -- its stable ``id``, ``title``,
``severity``, ``description``, ``references``, ``false_positives``,
``remediation`` and the ``evidence`` it cites -- and how it is found, in one
of two ways:

``check: NAME`` (with optional ``params:``)
    one of the built-in checks in :mod:`ipsecpcap.rules.checks`, for what a
    table filter cannot say (reuse across exchanges, grouping flows per
    server, the NULL-encryption heuristic, ...).

``match:``
    a filter over one table, for analysts' own rules without Python::

        match:
          table: sas                      # exchanges | ike | sas | child_sas | flows
          where:                          # every condition must hold
            protocol: esp                 # equal (a list: any of them)
            enc|in: [des-cbc, 3des-cbc]   # modifiers: in not gt gte lt lte contains
            packets|gt: 0                 #   startswith endswith re cidr
          detail: "{spi} from {src} to {dst} uses {enc}"

``requires: [policy]`` (or ``keys``) makes a rule run only when a policy (or
keys) was given.  ``tests:`` lists the captures (paths under ``fixtures/``)
where the rule must fire and where it must stay quiet; the test suite runs
them (``tests/rules/test_rule_pack.py``), so a rule without both fails.

Every finding is a :class:`~ipsecpcap.records.FindingRow`; the engine fills
in the rule's own fields, the check or match the evidence.
"""
from __future__ import annotations

import hashlib
import ipaddress
import json
import re
import string
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import UsageError
from ..records import SEVERITIES, FindingRow

BUILTIN_DIR = Path(__file__).resolve().parent
# The built-in rule files as parsed, each under its file's SHA-256 (write_pack_cache makes it):
# a file whose bytes still have that hash is taken from here, any other is parsed from its YAML.
PACK_CACHE = BUILTIN_DIR / "pack.json"
REQUIRED = ("id", "title", "severity", "description", "references", "false_positives", "remediation",
            "evidence", "tests")
OPTIONAL = ("requires", "check", "params", "match", "rev", "tags")
REQUIREMENTS = ("policy", "keys")
TABLES = ("exchanges", "ike", "sas", "child_sas", "flows")
MODIFIERS = ("eq", "in", "not", "gt", "gte", "lt", "lte", "contains", "startswith", "endswith", "re", "cidr")
MAX_FRAMES = 100  # evidence frames kept per finding (frame_count has them all)
ID_RE = re.compile(r"^[a-z][a-z0-9_]*$")


class RuleError(UsageError):
    """A rule file that cannot be read or has a mistake (file:line: what); exit code 2."""


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    severity: str
    description: str
    references: tuple[str, ...]
    false_positives: tuple[str, ...]
    remediation: str
    evidence: str
    tests: dict
    requires: tuple[str, ...] = ()
    check: str | None = None
    params: dict = field(default_factory=dict)
    match: dict | None = None
    rev: int = 1
    path: str = ""

    def to_dict(self) -> dict:
        return {"id": self.id, "title": self.title, "severity": self.severity, "rev": self.rev,
                "description": self.description, "references": list(self.references),
                "false_positives": list(self.false_positives), "remediation": self.remediation,
                "requires": list(self.requires), "path": self.path}


# ---------------------------------------------------------------------------- loading
def load_rules(extra_dirs: Iterable = ()) -> list[Rule]:
    """The built-in pack plus every ``*.yml``/``*.yaml`` in ``extra_dirs``.
    A rule in an extra directory with the id of a built-in one replaces it."""
    rules: dict[str, Rule] = {}
    for path in _rule_files(BUILTIN_DIR):
        r = load_rule_file(path)
        if r.id in rules:
            raise RuleError(f"{path}: duplicate rule id {r.id!r} (also in {rules[r.id].path})")
        rules[r.id] = r
    for d in extra_dirs:
        d = Path(d)
        if not d.is_dir():
            raise RuleError(f"{d}: no such rules directory")
        seen: dict[str, str] = {}
        for path in _rule_files(d):
            r = load_rule_file(path)
            if r.id in seen:
                raise RuleError(f"{path}: duplicate rule id {r.id!r} (also in {seen[r.id]})")
            seen[r.id] = r.path
            rules[r.id] = r
    return list(rules.values())


def _rule_files(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.suffix in (".yml", ".yaml") and p.is_file())


_CACHE: dict[tuple, Rule] = {}  # (path, mtime, size) -> Rule: a rule file is parsed once per process


def load_rule_file(path) -> Rule:
    path = Path(path)
    try:
        st = path.stat()
        resolved = path.resolve()
        key = (str(resolved), st.st_mtime_ns, st.st_size)
    except OSError:
        resolved, key = None, None
    if key is not None and key in _CACHE:
        return _CACHE[key]
    rule = _load_rule_file(path, builtin=resolved is not None and resolved.parent == BUILTIN_DIR)
    if key is not None:
        _CACHE[key] = rule
    return rule


def _load_rule_file(path: Path, builtin: bool = False) -> Rule:
    name = str(path)
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise RuleError(f"{name}: cannot read: {getattr(e, 'strerror', None) or e}") from None
    cached = _pack_cache().get(path.name) if builtin else None
    if cached is not None and cached.get("sha256") == hashlib.sha256(raw).hexdigest() and "data" in cached:
        data, lines = cached["data"], cached.get("lines") or {}
    else:
        data, lines = _parse_yaml(text, name)
    return _rule_from_data(data, lines, name)


_PACK: dict | None = None


def _pack_cache() -> dict:
    """The entries of ``pack.json`` by file name; none when it is missing or unreadable
    (then every built-in file is parsed from its YAML, which is only slower)."""
    global _PACK
    if _PACK is None:
        try:
            _PACK = json.loads(PACK_CACHE.read_bytes())["files"]
        except (OSError, ValueError, KeyError, TypeError):
            _PACK = {}
        if not isinstance(_PACK, dict) or not all(isinstance(e, dict) for e in _PACK.values()):
            _PACK = {}
    return _PACK


def _parse_yaml(text: str, name: str) -> tuple[object, dict]:
    """The document's data and the line of each top-level key (for the messages)."""
    import yaml  # here: the built-in pack comes from pack.json, and PyYAML takes 12 ms to import

    loader_class = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML has it
    try:
        loader = loader_class(text)  # one parse: the node tree (for line numbers) and the data from it
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise RuleError(f"{name}:{line}: not valid YAML: {getattr(e, 'problem', None) or e}") from None
    lines = {}
    if isinstance(node, yaml.MappingNode):
        lines = {k.value: k.start_mark.line + 1 for k, _ in node.value if isinstance(k, yaml.ScalarNode)}
    return data, lines


def _rule_from_data(data, lines: dict, name: str) -> Rule:
    """The checked Rule of a parsed rule file; RuleError (file:line: what) for a mistake."""

    def fail(key, msg):
        raise RuleError(f"{name}:{lines.get(key, 1)}: {msg}")

    if not isinstance(data, dict):
        fail(None, "a rule file is a mapping (id, title, severity, ...)")
    for k in data:
        if k not in REQUIRED + OPTIONAL:
            fail(k, f"unknown key {k!r}")
    for k in REQUIRED:
        if k not in data:
            fail(None, f"missing {k!r}")
    rid = data["id"]
    if not isinstance(rid, str) or not ID_RE.match(rid):
        fail("id", f"id {rid!r} must be lower-case letters, digits and _")
    if data["severity"] not in SEVERITIES:
        fail("severity", f"severity {data['severity']!r} is not one of {', '.join(SEVERITIES)}")
    for k in ("title", "description", "remediation", "evidence"):
        if not isinstance(data[k], str) or not data[k].strip():
            fail(k, f"{k!r} must be text")
    for k in ("references", "false_positives"):
        if not isinstance(data[k], list) or not all(isinstance(x, str) for x in data[k]):
            fail(k, f"{k!r} must be a list of text")
    requires = data.get("requires") or []
    if not isinstance(requires, list) or any(r not in REQUIREMENTS for r in requires):
        fail("requires", f"requires must list some of {', '.join(REQUIREMENTS)}")
    check, match = data.get("check"), data.get("match")
    if (check is None) == (match is None):
        fail("check" if check else "match", "a rule has either 'check' or 'match' (exactly one)")
    if check is not None:
        from . import checks

        if not isinstance(check, str) or check not in checks.CHECKS:
            fail("check", f"unknown check {check!r} (built-in checks: {', '.join(sorted(checks.CHECKS))})")
    params = data.get("params") or {}
    if not isinstance(params, dict):
        fail("params", "params must be a mapping")
    if match is not None:
        problem = _match_problem(match)
        if problem:
            fail("match", problem)
    tests = data["tests"]
    if not isinstance(tests, dict) or set(tests) - {"fires", "quiet"}:
        fail("tests", "tests is a mapping with 'fires' and 'quiet' lists")
    for kind in ("fires", "quiet"):
        cases = tests.get(kind) or []
        if not isinstance(cases, list) or not all(isinstance(c, dict) and "capture" in c for c in cases):
            fail("tests", f"tests.{kind} must be a list of cases, each with 'capture'")
    rev = data.get("rev", 1)
    if not isinstance(rev, int):
        fail("rev", "rev must be a number")
    return Rule(rid, data["title"].strip(), data["severity"], data["description"].strip(),
                tuple(data["references"]), tuple(data["false_positives"]), data["remediation"].strip(),
                data["evidence"].strip(), tests, tuple(requires), check, params, match, rev, name)


def write_pack_cache(path: Path = PACK_CACHE) -> None:
    """Write ``pack.json`` from the built-in rule files (after editing one of them:
    ``python -c "from ipsecpcap.rules.engine import write_pack_cache; write_pack_cache()"``;
    ``tests/rules/test_pack_cache.py`` fails while it is stale).  A file is cached only
    when it is a valid rule and JSON gives back exactly the data its YAML gives."""
    files = {}
    for p in _rule_files(BUILTIN_DIR):
        raw = p.read_bytes()
        data, lines = _parse_yaml(raw.decode("utf-8"), str(p))
        _rule_from_data(data, lines, str(p))
        if _same(json.loads(json.dumps(data)), data):
            files[p.name] = {"sha256": hashlib.sha256(raw).hexdigest(), "data": data, "lines": lines}
    text = json.dumps({"about": "generated by ipsecpcap.rules.engine.write_pack_cache from the *.yml "
                                "files beside it, which are the rules; do not edit", "files": files},
                      indent=1, ensure_ascii=False)
    Path(path).write_text(text + "\n", encoding="utf-8")


def _same(a, b) -> bool:
    """Equal, and of the same types all the way down (1 is not 1.0 nor True, nor "1")."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(map(_same, a, b))
    return a == b


def _match_problem(match) -> str | None:
    if not isinstance(match, dict):
        return "match must be a mapping with 'table' and 'where'"
    if match.get("table") not in TABLES:
        return f"match.table must be one of {', '.join(TABLES)}"
    where = match.get("where")
    if not isinstance(where, dict) or not where:
        return "match.where must be a mapping of conditions"
    for key, value in where.items():
        fname, _, mod = str(key).partition("|")
        if mod and mod not in MODIFIERS:
            return f"unknown modifier {mod!r} in {key!r} (modifiers: {', '.join(MODIFIERS)})"
        if mod == "re":
            try:
                re.compile(str(value))
            except re.error as e:
                return f"bad regular expression in {key!r}: {e}"
        if mod == "cidr":
            try:
                for v in (value if isinstance(value, list) else [value]):
                    ipaddress.ip_network(str(v), strict=False)
            except ValueError:
                return f"{key!r}: {value!r} is not a network"
    if set(match) - {"table", "where", "detail"}:
        return f"unknown keys in match: {', '.join(sorted(set(match) - {'table', 'where', 'detail'}))}"
    return None


# ---------------------------------------------------------------------------- evaluation
class Context:
    """What a check sees: the analysis (its tables), the policy, the rule's params, and
    ``shared``: a dict the checks of one evaluation share, for what several of them
    work out from the same tables (a scan of every IKE payload, the flows per SPI)."""

    def __init__(self, analysis, rule: Rule, shared: dict | None = None):
        self.analysis = analysis
        self.policy = analysis.policy
        self.keys = analysis.keys
        self.rule = rule
        self.params = rule.params
        self.shared = {} if shared is None else shared


def applicable(rule: Rule, analysis) -> bool:
    if "policy" in rule.requires and analysis.policy is None:
        return False
    if "keys" in rule.requires and analysis.keys is None:
        return False
    return True


def evaluate(rules: list[Rule], analysis) -> list[FindingRow]:
    """Run every applicable rule; findings most severe first, then by time."""
    from . import checks

    out: list[FindingRow] = []
    shared: dict = {}
    for rule in rules:
        if not applicable(rule, analysis):
            continue
        if rule.check is not None:
            hits = checks.CHECKS[rule.check](Context(analysis, rule, shared))
        else:
            hits = _match(rule, analysis)
        out.extend(finding(rule, hit) for hit in _taken(hits))
    rank = {s: i for i, s in enumerate(SEVERITIES)}
    out.sort(key=lambda f: (-rank[f.severity], f.first_seen if f.first_seen is not None else float("inf"),
                            f.rule, f.frames[:1]))
    return out


def _taken(hits):
    """The hits in order; a list lets go of each one as it is taken (a rule may find tens of
    thousands, and a hit is a larger dict than the finding made of it)."""
    if not isinstance(hits, list):
        yield from hits
        return
    hits.reverse()
    while hits:
        yield hits.pop()


def finding(rule: Rule, hit: dict) -> FindingRow:
    """A check's hit (a dict of FindingRow fields) completed with the rule's own fields."""
    get = hit.get
    frames = sorted({int(f) for f in get("frames", ()) if f is not None})
    # (positional, in FindingRow's field order: made for every hit, tens of thousands on a long capture)
    return FindingRow(
        rule.id, get("severity", rule.severity), get("title", rule.title), hit["detail"],  # rule .. detail
        get("remediation", rule.remediation),
        frames[:MAX_FRAMES] if len(frames) > MAX_FRAMES else frames, get("frame_count", len(frames)),
        get("first_seen"), get("last_seen"), get("capture"),
        get("src"), get("dst"), get("proto"), get("port"),
        get("spi"), get("ike_sa"), get("policy"),
        hit["evidence"] if "evidence" in hit else {},
    )


def _match(rule: Rule, analysis) -> list[dict]:
    m = rule.match
    table = analysis.table(m["table"])
    conds = [_condition(k, v) for k, v in m["where"].items()]
    out = []
    for row in table:
        d = row.to_dict()
        if all(c(d) for c in conds):
            out.append(row_hit(d, m.get("detail") or rule.title))
    return out


_MISSING = object()


def _condition(key: str, value):
    fname, _, mod = key.partition("|")
    mod = mod or ("in" if isinstance(value, list) else "eq")
    values = value if isinstance(value, list) else [value]

    def get(d):
        return d.get(fname, _MISSING)

    def test(x) -> bool:
        if x is _MISSING or x is None:
            return mod == "not" and None not in values
        if mod in ("eq", "in"):
            return x in values or (isinstance(x, list) and any(v in x for v in values))
        if mod == "not":
            return x not in values
        if mod in ("gt", "gte", "lt", "lte"):
            try:
                v = float(values[0])
                x = float(x)
            except (TypeError, ValueError):
                return False
            return {"gt": x > v, "gte": x >= v, "lt": x < v, "lte": x <= v}[mod]
        items = x if isinstance(x, list) else [x]
        if mod == "contains":
            return any(str(v) in str(i) for v in values for i in items)
        if mod == "startswith":
            return any(str(i).startswith(str(v)) for v in values for i in items)
        if mod == "endswith":
            return any(str(i).endswith(str(v)) for v in values for i in items)
        if mod == "re":
            return any(re.search(str(v), str(i)) for v in values for i in items)
        if mod == "cidr":
            try:
                ip = ipaddress.ip_address(str(x))
            except ValueError:
                return False
            return any(ip in ipaddress.ip_network(str(v), strict=False) for v in values
                       if ipaddress.ip_network(str(v), strict=False).version == ip.version)
        return False

    return lambda d: test(get(d))


class _SafeFormatter(string.Formatter):
    """``{field}`` only: no attribute or index access, unknown fields left as they are."""

    def get_field(self, field_name, args, kwargs):
        if not field_name.isidentifier():
            return "{" + field_name + "}", field_name
        return kwargs.get(field_name, "{" + field_name + "}"), field_name

    def format_field(self, value, format_spec):
        try:
            return super().format_field(value, format_spec)
        except (ValueError, TypeError):
            return str(value)


def row_hit(d: dict, detail: str) -> dict:
    """A table row as a finding's evidence."""
    frames = [d.get(k) for k in ("frame", "first_frame", "last_frame", "created_frame", "deleted_frame")
              if isinstance(d.get(k), int)]
    first = next((d[k] for k in ("ts", "first_seen", "created", "first_packet") if d.get(k) is not None), None)
    last = next((d[k] for k in ("ts", "last_seen", "deleted", "last_packet") if d.get(k) is not None), first)
    spi = d.get("spi") or ",".join(x for x in (d.get("spi_i"), d.get("spi_r")) if x) or None
    ike = d.get("ike_sa") or (f"{d['ispi']}/{d['rspi']}" if d.get("ispi") else None)
    try:
        text = _SafeFormatter().format(detail, **d)
    except (ValueError, IndexError, KeyError):
        text = detail
    return {"detail": text, "frames": frames, "first_seen": first, "last_seen": last,
            "capture": d.get("capture"), "src": d.get("src") or d.get("initiator"),
            "dst": d.get("dst") or d.get("responder"), "proto": d.get("proto") or d.get("protocol"),
            "port": d.get("dport"), "spi": spi, "ike_sa": ike, "evidence": {}}
