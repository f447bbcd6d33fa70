"""Every record class (``@record``: the dissectors' records and the table rows) behaves as
``@dataclass(frozen=True, slots=True)`` of the same fields would: the reference is a
class that dataclasses itself makes from the record's fields."""
from __future__ import annotations

import copy
import dataclasses
import math
import pickle

import pytest

import ipsecpcap.dissectors.records as drecords
import ipsecpcap.records as records
import ipsecpcap.sequence as sequence

CLASSES = sorted({c for m in (drecords, records, sequence) for c in vars(m).values()
                  if isinstance(c, type) and dataclasses.is_dataclass(c) and "__slots__" in vars(c)
                  and getattr(c.__init__, "__module__", None) is None},  # (record's exec'd __init__)
                 key=lambda c: (c.__module__, c.__name__))


def _reference(cls):
    """The same class as dataclasses makes it."""
    spec = []
    for f in dataclasses.fields(cls):
        kw = {"repr": f.repr, "compare": f.compare, "hash": f.hash}
        if f.default is not dataclasses.MISSING:
            kw["default"] = f.default
        elif f.default_factory is not dataclasses.MISSING:
            kw["default_factory"] = f.default_factory
        spec.append((f.name, f.type, dataclasses.field(**kw)))
    ref = dataclasses.make_dataclass(cls.__name__, spec, frozen=True, slots=True)
    ref.__qualname__ = cls.__qualname__
    return ref


def _values(cls, seed: int):
    """Arguments for every field: hashable (ints, strings, tuples, None), some alike across seeds."""
    out = {}
    for i, f in enumerate(dataclasses.fields(cls)):
        choice = (seed + i) % 4
        out[f.name] = [seed, f"{f.name}-{seed}", (seed, "x"), None][choice]
    return out


def test_there_are_record_classes():
    names = {c.__name__ for c in CLASSES}
    assert {"Anomaly", "Payload", "IkeMessage", "ExchangeRow", "SaRow", "FindingRow"} <= names, names


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_behaves_as_a_frozen_slotted_dataclass(cls):
    ref = _reference(cls)
    assert [f.name for f in dataclasses.fields(cls)] == [f.name for f in dataclasses.fields(ref)]
    assert cls.__match_args__ == ref.__match_args__
    p, q = cls.__dataclass_params__, ref.__dataclass_params__
    assert (p.init, p.repr, p.eq, p.order, p.unsafe_hash, p.frozen) == \
        (q.init, q.repr, q.eq, q.order, q.unsafe_hash, q.frozen)
    made = {}
    for seed in (1, 2, 1):
        a, r = cls(**_values(cls, seed)), ref(**_values(cls, seed))
        assert repr(a) == repr(r)
        assert hash(a) == hash(r)
        assert dataclasses.astuple(a) == dataclasses.astuple(r)
        assert dataclasses.asdict(a) == dataclasses.asdict(r)
        for other_seed, (b, s) in made.items():
            assert (a == b) == (r == s) == (seed == other_seed)
            assert (a != b) == (r != s)
        made[seed] = (a, r)
        assert a == copy.copy(a) and a == pickle.loads(pickle.dumps(a))
        assert (a == r) is False and a.__eq__(r) is NotImplemented  # another class: never equal
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(a, dataclasses.fields(cls)[0].name, 0)
        assert dataclasses.replace(a) == a


def test_fields_left_out_of_comparison_stay_out():
    p1 = drecords.Payload(**{**_values(drecords.Payload, 1), "fields": {"a": 1}})
    p2 = drecords.Payload(**{**_values(drecords.Payload, 1), "fields": {"b": 2}})
    assert p1 == p2 and hash(p1) == hash(p2)  # fields: compare=False, hash=False


def test_unhashable_values_raise_as_dataclasses_do():
    row = dataclasses.replace(records.FindingRow(**_values(records.FindingRow, 3)), frames=[1, 2])
    with pytest.raises(TypeError):
        hash(row)
    with pytest.raises(TypeError):
        hash(_reference(records.FindingRow)(**dataclasses.asdict(row)))


def test_a_nan_field_compares_as_in_a_tuple():
    nan = math.nan
    a = drecords.Anomaly(nan, "w")
    assert a == drecords.Anomaly(nan, "w")  # the same object: equal in a tuple
    assert a != drecords.Anomaly(float("nan"), "w")
    ref = _reference(drecords.Anomaly)
    assert ref(nan, "w") == ref(nan, "w") and ref(nan, "w") != ref(float("nan"), "w")


def test_a_record_inside_itself_prints_dots():
    a = drecords.Anomaly([], "w")
    a.kind.append(a)
    assert repr(a) == "Anomaly(kind=[...], where='w', detail='')"
