"""Rule pack and rule engine, installed as ``ipsecpcap.rules``.

The rule files and the engine that evaluates them over the analysis tables
are built by the policy-and-rules issue; this package exists now so the
layout and the install mapping are in place from the start.
"""
