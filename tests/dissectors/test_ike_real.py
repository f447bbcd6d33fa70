"""parse_ike on every IKE message of the public captures, checked against tshark.

The captures are the ones listed in fixtures/public/MANIFEST.tsv (other
projects' test and sample traces: Wireshark, tcpdump, Zeek, Suricata, Arkime,
nDPI, scapy, Libreswan, Openswan ...).  Every UDP 500 payload, and every UDP
4500 payload that starts with the RFC 3948 non-ESP marker, is an IKE message.

Checks:

* parse_ike never raises, and exactly the messages listed in
  EXPECTED_ANOMALIES (with the reasons given there) carry anomalies;
* for every IKE frame that is not an IP fragment, the exchange type, message
  ID, SPIs, flags, first payload and the payload type list (SA proposals and
  transforms included, as tshark lists them), plus the notify types, ID
  types, KE groups and vendor IDs equal tshark's; the disagreements found
  are listed in KNOWN_TSHARK_DISAGREEMENTS with the side judged right;
* seeded random fuzzing: random bytes and mutated real messages.
"""
from __future__ import annotations

import bisect
import csv
import gzip
import io
import os
import random
import shutil
import struct
import subprocess
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dpkt
import pytest

from ipsecpcap.dissectors.ike import IKE_HEADER_LEN, parse_ike
from ipsecpcap.dissectors.records import Anomaly, IkeMessage, Payload

CAPTURES = Path(__file__).resolve().parents[2] / "fixtures" / "public"
MANIFEST = CAPTURES / "MANIFEST.tsv"
ANOMALY_KINDS = {"truncated", "bad_length", "bad_header", "trailing_data", "loop"}

pytestmark = pytest.mark.skipif(not MANIFEST.exists(), reason=f"public captures not found at {CAPTURES}")

# (capture, frame) -> (anomaly kinds, why).  "IP fragment" frames hold the
# first fragment of a datagram whose IKE message continues in later frames.
EXPECTED_ANOMALIES: dict[tuple[str, int], tuple[set[str], str]] = {
    ("nDPI/ipsec_isakmp_esp.pcap", 192): (
        {"bad_length"}, "payload type 127 of 784 bytes fills the 812-byte message, yet names IDi as next"),
    ("openswan/libpluto/lp08-parentR1/parentR1notify.pcap", 1): (
        {"trailing_data"}, "2 bytes after the N payload inside the header length (tshark: Extra data)"),
    ("openswan/libpluto/lp09-I1notify/parentR1notify.pcap", 1): (
        {"trailing_data"}, "same Openswan message as lp08"),
    ("tcpdump/ikev1_id_ipv6_addr_subnet-oobr.pcap", 1): (
        {"bad_length", "truncated"}, "fuzzed, IP fragment: 24-byte IPV6_ADDR_SUBNET ID, huge lengths"),
    ("tcpdump/ikev2-id-normal.pcap", 1): (
        {"bad_length", "trailing_data"}, "IDi of length 9 carries 1 byte of ID_IPV4_ADDR, then 39 stray bytes"),
    ("tcpdump/ikev2-id-short.pcap", 1): (
        {"bad_length", "trailing_data"}, "IDi of length 5: its 4-byte ID header does not fit"),
    ("tcpdump/ikev2pI2-segfault.pcapng", 1): (
        {"bad_header", "bad_length"}, "fuzzed SA: last-substruc 46, proposal length 43690"),
    ("tcpdump/isakmp-delete-segfault.pcap", 1): ({"bad_header"}, "major version 11"),
    ("tcpdump/isakmp-ikev1_n_print-oobr.pcap", 1): ({"truncated"}, "fuzzed, IP fragment"),
    ("tcpdump/isakmp-ikev1_n_print-oobr.pcap", 3): ({"truncated"}, "fuzzed, IP fragment"),
    ("tcpdump/isakmp-no-none-np.pcapng", 1): (
        {"bad_length", "trailing_data"}, "last N names another N after the 84-byte message; 2102 bytes follow"),
    ("tcpdump/isakmp-pointer-loop.pcap", 1): ({"bad_length"}, "header length 0, 2 bytes of payload"),
    ("tcpdump/isakmp-various-oobr.pcap", 1): ({"truncated"}, "fuzzed, IP fragment"),
    ("tcpdump/isakmpv1-attr-oobr.pcap", 1): ({"trailing_data", "truncated"}, "fuzzed, IP fragment"),
    ("zeek-spicy-ipsec/ipsec-ikev1-payload-bad-length.pcap", 1): ({"bad_length"}, "VID payload length 3"),
    ("zeek-spicy-ipsec/ipsec-ikev1-zero-length.pcap", 1): ({"bad_length"}, "header length 0"),
    ("zeek-spicy-ipsec/ipsec_client.pcap", 3): ({"truncated"}, "IP fragment of a 3468-byte IKE_AUTH"),
    ("zeek-spicy-ipsec/ipsec_client.pcap", 6): ({"truncated"}, "IP fragment (retransmission)"),
    ("zeek-spicy-ipsec/ipsec_client.pcap", 9): ({"truncated"}, "IP fragment (retransmission)"),
}

# (capture, frame) -> which side is right and why.
KNOWN_TSHARK_DISAGREEMENTS: dict[tuple[str, int], str] = {
    ("tcpdump/ISAKMP_sa_setup.pcap", 3): (
        "ours: Main Mode with two draft-04..08 NAT-D payloads numbered 15; tshark reads 15 as GDOI SAK, "
        "throws 'Malformed Packet' inside the first and drops the second"),
    ("tcpdump/ISAKMP_sa_setup.pcap", 4): "ours: same as frame 3 (the responder's NAT-D pair)",
    ("tcpdump/ikev2pI2-segfault.pcapng", 1): (
        "both flag it: tshark lists the type of proposal #2 whose length (43690) overruns the SA; "
        "we stop at that header and report bad_length"),
    ("zeek-spicy-ipsec/ipsec-ikev1-payload-bad-length.pcap", 1): (
        "ours: VID length 3 < 4; tshark lists it and then a phantom VID read from the bogus payload's bytes"),
    ("tcpdump/ikev2-id-short.pcap", 1): (
        "ours: IDi has a 1-byte body, tshark still reads an ID type from it; we decline the 4-byte ID header"),
}


# ------------------------------------------------------------------ reading
@dataclass(frozen=True)
class IkeFrame:
    capture: str  # path relative to fixtures/public
    frame: int  # 1-based, as tshark counts
    fragment: bool  # the IP datagram is a fragment: the message is incomplete
    data: bytes  # the IKE message (non-ESP marker removed)


def _reader(path: Path) -> dpkt.pcap.Reader | dpkt.pcapng.Reader:
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if raw[:4] == b"\x0a\x0d\x0d\x0a":  # pcapng Section Header Block
        return dpkt.pcapng.Reader(io.BytesIO(raw))
    return dpkt.pcap.Reader(io.BytesIO(raw))


def _ip(linktype: int, frame: bytes) -> dpkt.Packet | None:
    if linktype == dpkt.pcap.DLT_EN10MB:
        return dpkt.ethernet.Ethernet(frame).data
    if linktype in (dpkt.pcap.DLT_NULL, dpkt.pcap.DLT_LOOP):
        # BSD loopback: 4-byte address family, host order (DLT_NULL) or big-endian (DLT_LOOP)
        family = struct.unpack("<I" if linktype == dpkt.pcap.DLT_NULL else ">I", frame[:4])[0]
        if family > 0xFFFF:  # written on the other endianness
            family = struct.unpack(">I", frame[:4])[0]
        return dpkt.ip.IP(frame[4:]) if family == 2 else dpkt.ip6.IP6(frame[4:])
    if linktype in (dpkt.pcap.DLT_RAW, 12, 14, 101, 228, 229):  # raw IP (the numbers vary by platform)
        return dpkt.ip.IP(frame) if frame[:1] and frame[0] >> 4 == 4 else dpkt.ip6.IP6(frame)
    if linktype == dpkt.pcap.DLT_LINUX_SLL:
        return dpkt.sll.SLL(frame).data
    return None


def _ike_bytes(sport: int, dport: int, payload: bytes) -> bytes | None:
    if 4500 in (sport, dport):
        # RFC 3948 2: 0xff is a NAT keepalive, a non-zero first word an ESP SPI,
        # and a zero word the non-ESP marker in front of an IKE message
        if payload[:4] != b"\x00\x00\x00\x00":
            return None
        return payload[4:]
    if 500 in (sport, dport):
        return payload
    return None


def ike_frames(capture: str) -> Iterator[IkeFrame]:
    reader = _reader(CAPTURES / capture)
    linktype = reader.datalink() & 0xFFFF  # upper bits of the pcap LinkType field: FCS info
    for number, (_, frame) in enumerate(reader, 1):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ip = _ip(linktype, frame)
        except (dpkt.UnpackError, struct.error, IndexError):
            continue
        if isinstance(ip, dpkt.ip.IP):
            fragment = bool(ip._flags_offset & (dpkt.ip.IP_MF | dpkt.ip.IP_OFFMASK))
        elif isinstance(ip, dpkt.ip6.IP6):
            fragment = 44 in ip.extension_hdrs  # Fragment header
        else:
            continue
        udp = ip.data
        if not isinstance(udp, dpkt.udp.UDP):
            continue
        data = _ike_bytes(udp.sport, udp.dport, bytes(udp.data)[: max(udp.ulen - 8, 0)])
        if data is not None:
            yield IkeFrame(capture, number, fragment, data)


def _captures() -> list[str]:
    with MANIFEST.open(newline="") as f:
        return [row["path"] for row in csv.DictReader(f, delimiter="\t")]


@pytest.fixture(scope="module")
def frames() -> list[IkeFrame]:
    return [f for capture in _captures() for f in ike_frames(capture)]


# --------------------------------------------------------------- no raising
def _check_record(msg: IkeMessage) -> None:
    assert isinstance(msg, IkeMessage)
    assert len(msg.ispi) == 8 and len(msg.rspi) == 8
    for anomaly in msg.anomalies:
        assert isinstance(anomaly, Anomaly) and anomaly.kind in ANOMALY_KINDS, anomaly
    for payload in msg.payloads:
        assert isinstance(payload, Payload) and isinstance(payload.name, str) and payload.name


def test_captures_hold_ike(frames: list[IkeFrame]) -> None:
    # tshark counts 1060 ISAKMP frames in MANIFEST.tsv; a reader regression
    # that silently finds nothing must fail here
    assert len(frames) >= 1000
    assert len({f.capture for f in frames}) >= 200


def test_parse_ike_never_raises_on_real_messages(frames: list[IkeFrame]) -> None:
    for frame in frames:
        _check_record(parse_ike(frame.data))


def test_anomalies_in_real_captures(frames: list[IkeFrame]) -> None:
    found = {}
    for frame in frames:
        msg = parse_ike(frame.data)
        if msg.anomalies:
            found[(frame.capture, frame.frame)] = {a.kind for a in msg.anomalies}
    assert found == {key: kinds for key, (kinds, _why) in EXPECTED_ANOMALIES.items()}


# ------------------------------------------------------------------- tshark
TSHARK_FIELDS = [
    "frame.number",
    "ip.flags.mf",
    "ip.frag_offset",
    "ipv6.fraghdr.offset",
    "ipv6.fraghdr.more",
    "isakmp.ispi",
    "isakmp.rspi",
    "isakmp.exchangetype",
    "isakmp.messageid",
    "isakmp.flags",
    "isakmp.nextpayload",
    "isakmp.typepayload",
    "isakmp.notify.msgtype",
    "isakmp.id.type",
    "isakmp.key_exchange.dh_group",
    "isakmp.vid_bytes",
]


def _run_tshark(path: Path, config_home: Path) -> list[list[str]]:
    cmd = ["tshark", "-n", "-r", str(path), "-Y", "isakmp", "-T", "fields",
           "-E", "occurrence=a", "-E", "aggregator=,", "-E", "separator=/t"]
    for field in TSHARK_FIELDS:
        cmd += ["-e", field]
    # an empty configuration: no decryption tables, default preferences
    env = dict(os.environ, HOME=str(config_home), XDG_CONFIG_HOME=str(config_home))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def _row(values: list[str]) -> dict[str, list[str]]:
    return {f: (v.split(",") if v else []) for f, v in zip(TSHARK_FIELDS, values)}


def tshark_rows(captures: list[str], workdir: Path) -> dict[tuple[str, int], dict[str, list[str]]]:
    """(capture, frame) -> field -> values, for the frames tshark dissects as ISAKMP.

    tshark's start-up dominates on 200 one-packet files, so the captures are
    concatenated with mergecap and dissected in one run; frame numbers are
    mapped back through each capture's frame count.  (Checked while writing
    this test: the merged run gives exactly the per-file rows.)
    """
    rows: dict[tuple[str, int], dict[str, list[str]]] = {}
    if shutil.which("mergecap") is None:
        for capture in captures:
            for values in _run_tshark(CAPTURES / capture, workdir):
                rows[(capture, int(values[0]))] = _row(values)
        return rows
    merged = workdir / "all.pcapng"
    subprocess.run(["mergecap", "-a", "-F", "pcapng", "-w", str(merged)] + [str(CAPTURES / c) for c in captures],
                   check=True, capture_output=True)
    starts, total = [], 0  # global number of each capture's first frame, minus one
    for capture in captures:
        starts.append(total)
        total += sum(1 for _ in _reader(CAPTURES / capture))
    for values in _run_tshark(merged, workdir):
        number = int(values[0])
        index = bisect.bisect_left(starts, number) - 1
        rows[(captures[index], number - starts[index])] = _row(values)
    return rows


def _flat_types(msg: IkeMessage) -> list[int]:
    """Payload types in tshark's order: each SA is followed by its proposals
    (2) and their transforms (3); the IKEv1 ciphertext is not a payload."""
    types = []
    for payload in msg.payloads:
        if payload.name == "encrypted":
            continue
        types.append(payload.type)
        if payload.name == "SA":
            for proposal in payload.fields.get("proposals", ()):
                types += [2] + [3] * len(proposal.transforms)
    return types


def _ours(msg: IkeMessage) -> dict[str, list]:
    def field(names: tuple[str, ...], key: str) -> list:
        return [p.fields[key] for p in msg.payloads if p.name in names and key in p.fields]

    return {
        "ispi": msg.ispi.hex(),
        "rspi": msg.rspi.hex(),
        "mid": msg.mid,
        "flags": msg.flags,
        "next": msg.next_payload,
        "types": _flat_types(msg),
        "notify": field(("N",), "type"),
        "id": field(("ID", "IDi", "IDr"), "id_type"),
        "group": field(("KE",), "group"),
        "vid": [d.hex() for d in field(("VID", "V"), "data")],
    }


def _theirs(row: dict[str, list[str]]) -> dict[str, list]:
    return {
        "ispi": row["isakmp.ispi"][0],
        "rspi": row["isakmp.rspi"][0],
        "mid": int(row["isakmp.messageid"][0], 16),
        "flags": int(row["isakmp.flags"][0], 16),
        "next": int(row["isakmp.nextpayload"][0]),
        "types": [int(v) for v in row["isakmp.typepayload"]],
        "notify": [int(v) for v in row["isakmp.notify.msgtype"]],
        "id": [int(v) for v in row["isakmp.id.type"]],
        "group": [int(v) for v in row["isakmp.key_exchange.dh_group"]],
        "vid": row["isakmp.vid_bytes"],
    }


def _fragmented(row: dict[str, list[str]]) -> bool:
    return (
        "1" in row["ip.flags.mf"] + row["ipv6.fraghdr.more"]
        or any(v != "0" for v in row["ip.frag_offset"] + row["ipv6.fraghdr.offset"])
    )


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed: no reference dissection")
def test_agrees_with_tshark(frames: list[IkeFrame], tmp_path_factory: pytest.TempPathFactory) -> None:
    ours = {(f.capture, f.frame): f for f in frames}
    theirs = tshark_rows(_captures(), tmp_path_factory.mktemp("tshark"))

    compared, disagreements = 0, {}
    for key, row in theirs.items():
        if _fragmented(row):
            continue  # tshark reassembled IP fragments; we see one fragment per frame
        if key not in ours:
            disagreements[key] = "tshark dissects a frame we did not extract"
            continue
        msg = parse_ike(ours[key].data)
        mine, reference = _ours(msg), _theirs(row)
        if row["isakmp.exchangetype"]:  # tshark omits it for unknown major versions
            mine["exchange"], reference["exchange"] = msg.exchange_type, int(row["isakmp.exchangetype"][0])
        compared += 1
        if mine != reference:
            disagreements[key] = {k: (mine[k], reference[k]) for k in mine if mine[k] != reference[k]}
    for key, frame in ours.items():
        if key in theirs or frame.fragment:
            continue
        # tshark's heuristic refuses a header whose length is impossible; we
        # dissect it and say so in a header anomaly
        header = [a.kind for a in parse_ike(frame.data).anomalies if a.where.endswith(".header")]
        if not {"bad_length", "bad_header"} & set(header):
            disagreements[key] = "we dissect a frame tshark does not call ISAKMP"

    assert compared >= 1000
    unexpected = {k: v for k, v in disagreements.items() if k not in KNOWN_TSHARK_DISAGREEMENTS}
    assert unexpected == {}
    assert set(disagreements) == set(KNOWN_TSHARK_DISAGREEMENTS), "a known disagreement went away: update the list"


# ------------------------------------------------------------------- fuzzing
def test_fuzz_random_bytes() -> None:
    rng = random.Random(20240501)
    for _ in range(3000):
        size = rng.choice((0, 1, 27, 28, 29, 40, 64, 200, 1500))
        data = bytearray(rng.getrandbits(8) for _ in range(size))
        if size > 17 and rng.random() < 0.8:
            data[17] = rng.choice((0x10, 0x20))  # mostly valid versions, to get past the header
        _check_record(parse_ike(bytes(data)))


def test_fuzz_mutated_real_messages(frames: list[IkeFrame]) -> None:
    rng = random.Random(7296)
    seeds = [f.data for f in frames if len(f.data) >= IKE_HEADER_LEN]
    for _ in range(4000):
        data = bytearray(rng.choice(seeds))
        for _ in range(rng.randint(1, 6)):
            action = rng.random()
            if action < 0.5:  # flip a byte, preferring lengths and type codes early on
                pos = rng.randrange(min(len(data), 256)) if rng.random() < 0.7 else rng.randrange(len(data))
                data[pos] = rng.getrandbits(8)
            elif action < 0.7:  # cut
                del data[rng.randrange(len(data) + 1):]
            elif action < 0.85:  # splice in random bytes
                pos = rng.randrange(len(data) + 1)
                data[pos:pos] = bytes(rng.getrandbits(8) for _ in range(rng.randint(1, 16)))
            else:  # set a 16-bit field to an extreme
                if len(data) >= 2:
                    pos = rng.randrange(len(data) - 1)
                    data[pos : pos + 2] = rng.choice((b"\x00\x00", b"\x00\x03", b"\xff\xff", b"\x00\x04"))
            if not data:
                break
        _check_record(parse_ike(bytes(data)))
