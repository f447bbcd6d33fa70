"""The issue's acceptance case for ``plaintext_to_protected``, against what the recorder did.

``fixtures/strongswan/ikev2-plaintext-beside-tunnel``: a working IKEv2 tunnel to
sun's server and, beside it, plaintext probes from moon to sun's veth
address; ``plaintext.json`` is the recorder's own account of each probe (what
it sent, what came back) and tshark's frames of it.  Every probe must be one
finding with its port, its outcome and its frames; IKE (UDP 500/4500) and the
ESP of the tunnel must never be reported.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ipsecpcap.analysis import analyze

SCENARIO = Path(__file__).resolve().parents[2] / "fixtures" / "strongswan" / "ikev2-plaintext-beside-tunnel"
OUTCOME = {"answered": "accepted", "refused": "rejected", "unanswered": "unanswered"}
SEVERITY = {"accepted": "high", "rejected": "medium", "unanswered": "low"}


@pytest.fixture(scope="module")
def found():
    a = analyze([SCENARIO / "capture.pcap"], policy=SCENARIO / "policy.yaml")
    return [f for f in a.findings if f.rule == "plaintext_to_protected"], a


PROBES = json.loads((SCENARIO / "plaintext.json").read_text())["probes"]


@pytest.mark.parametrize("probe", PROBES, ids=[p["name"] for p in PROBES])
def test_each_probe_is_one_finding_with_port_outcome_and_frames(found, probe):
    findings, _ = found
    mine = [f for f in findings if f.port == probe["dport"] and f.proto == probe["proto"]]
    assert len(mine) == 1, [f.detail for f in findings]
    f = mine[0]
    outcome = OUTCOME[probe["result"]]
    assert f.evidence["outcome"] == outcome
    assert outcome in f.detail or {"accepted": "answered"}.get(outcome, "") in f.detail
    assert f.severity == SEVERITY[outcome]
    assert (f.src, f.dst, f.policy) == (probe["src"], probe["dst"], "sun-server")
    frames = [x["frame"] for x in probe["capture"]["frames"]]
    # the first and last frame of the connection are cited; every cited frame is one of the probe's
    assert frames[0] in f.frames
    assert set(f.frames) <= set(frames), (f.frames, frames)
    to_server = sum(1 for x in probe["capture"]["frames"] if x["dir"] == "client->server")
    back = sum(1 for x in probe["capture"]["frames"] if x["dir"] == "server->client" and "ICMP" not in x["what"])
    assert f.evidence["packets_back"] == back
    assert f.evidence.get("packets_to_server") == to_server


def test_the_http_request_is_accepted_with_its_port(found):
    findings, _ = found
    http = next(f for f in findings if f.port == 8080)
    assert http.evidence["outcome"] == "accepted" and http.severity == "high"
    assert "port 8080" in http.detail and "accepted" in http.detail


def test_ike_and_the_tunnel_are_never_reported(found):
    findings, a = found
    assert a.exchanges and any(r.protocol == "esp" for r in a.sas)  # the tunnel is there...
    for f in a.findings:
        assert f.port not in (500, 4500), f.detail
        if f.rule == "plaintext_to_protected":
            assert f.proto in ("tcp", "udp")
    assert len(findings) == len(PROBES)


def test_without_the_policy_it_does_not_run(found):
    a = analyze([SCENARIO / "capture.pcap"])
    assert not [f for f in a.findings if f.rule == "plaintext_to_protected"]


def test_an_exemption_or_allowed_port_silences_it(tmp_path):
    pol = tmp_path / "p.yaml"
    pol.write_text("protected:\n  - name: sun-server\n    hosts: [192.0.2.2]\n    exempt: [tcp/8080]\n"
                   "    allow_ports: [udp/9000-9001]\n")
    a = analyze([SCENARIO / "capture.pcap"], policy=pol)
    ports = sorted(f.port for f in a.findings if f.rule == "plaintext_to_protected")
    assert ports == [8081, 8443]
