"""The rule engine: load the rule pack and evaluate it over an analysis."""
from __future__ import annotations


def load_rules(extra_dirs=()):
    return []


def evaluate(rules, analysis):
    return []
