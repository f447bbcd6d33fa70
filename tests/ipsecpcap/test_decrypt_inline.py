"""The inline ESP opening of ``ipsecpcap decrypt`` (FastDecrypt.block) against the
frame-by-frame way and against the plaintext the packets were sealed with.

One synthetic capture takes every path the inline loop has, several times
over: the common tunnel-mode packet (AES-GCM, AES-CBC + HMAC-SHA1-96, ESP in
UDP 4500), and each way out of it -- a tag or ICV that fails, a ciphertext of
the wrong length, a pad length that does not fit, non-default padding, TFC
padding, transport mode, an inner IPv6 packet, a dummy packet (next header 59),
an empty tunnel payload, inner IKE, an inner IPv4 fragment or header with
options, ESP inside the tunnel (raw and in UDP 4500), 32-bit sequence numbers
that wrap (the SA then uses extended sequence numbers, found inline or by the
keyed decoder), an SA without a key, the same SA seen under AH and behind
a VLAN tag (where the keyed decoder opens it), AH over TCP, over IKE, over ESP
cut short, over ESP carrying transport mode or ESP -- between plain
TCP / UDP, IKE and NAT-keepalive frames.  The packets are sealed here with
``cryptography`` and ``hmac`` directly, not with ipsecpcap's code.
"""
from __future__ import annotations

import functools
import hashlib
import hmac
import struct

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

import ipsecpcap.decryptpcap as decryptpcap
from ipsecpcap.decryptpcap import decrypt_captures
from ipsecpcap.keys import load_keys
from ipsecpcap.reader import open_capture
from ipsecpcap.sacrypto import SaCrypto

# --------------------------------------------------------------------------- packets

MAC = b"\x02\x00\x00\x00\x00\x01" + b"\x02\x00\x00\x00\x00\x02"


def _checksum(hdr: bytes) -> int:
    s = sum(struct.unpack(f"!{len(hdr) // 2}H", hdr))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def ipv4(src: str, dst: str, proto: int, payload: bytes, ident: int = 1, frag: int = 0, options: bytes = b"") -> bytes:
    """RFC 791 header (checksum set) and payload."""
    ihl = 5 + len(options) // 4
    hdr = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, ihl * 4 + len(payload), ident, frag, 64, proto, 0,
                      bytes(map(int, src.split("."))), bytes(map(int, dst.split(".")))) + options
    return hdr[:10] + struct.pack("!H", _checksum(hdr)) + hdr[12:] + payload


def udp(sport: int, dport: int, data: bytes) -> bytes:
    return struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data


def tcp(sport: int, dport: int, data: bytes) -> bytes:
    return struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 0x50, 0x18, 1024, 0, 0) + data


def ipv6(payload: bytes, nh: int = 17) -> bytes:
    return struct.pack("!IHBB16s16s", 0x60000000, len(payload), nh, 64, b"\x20\x01" + bytes(13) + b"\x01",
                       b"\x20\x01" + bytes(13) + b"\x02") + payload


def eth(payload: bytes, ethertype: int = 0x0800, vlan: int | None = None) -> bytes:
    tag = b"" if vlan is None else struct.pack("!HH", 0x8100, vlan)
    return MAC + tag + struct.pack("!H", ethertype) + payload


def trailer(payload: bytes, nh: int, block: int, pad: bytes | None = None, pad_len: int | None = None) -> bytes:
    """RFC 4303 2.4: payload, padding (1, 2, 3, ... unless given), pad length, next header."""
    if pad is None:
        pad = bytes(range(1, -(len(payload) + 2) % block + 1))
    return payload + pad + bytes([len(pad) if pad_len is None else pad_len, nh])


class Gcm:
    """AES-GCM-128 with a 16-byte ICV (RFC 4106): 16-byte key, 4-byte salt."""

    def __init__(self, seed: int):
        self.key = hashlib.sha256(b"gcm %d" % seed).digest()[:20]

    def esp_sa(self, src, dst, spi) -> str:
        return (f'"IPv4","{src}","{dst}","0x{spi:08x}","AES-GCM with 16 octet ICV [RFC4106]",'
                f'"0x{self.key.hex()}","NULL",""')

    def seal(self, spi: int, seq: int, pt: bytes, seq_hi: int | None = None, tamper: bool = False) -> bytes:
        iv = hashlib.sha256(b"iv %d %d" % (spi, seq)).digest()[:8]
        head = struct.pack("!II", spi, seq)
        aad = head if seq_hi is None else head[:4] + struct.pack("!I", seq_hi) + head[4:]  # RFC 4106 5
        body = AESGCM(self.key[:16]).encrypt(self.key[16:] + iv, pt, aad)
        if tamper:
            body = bytes([body[0] ^ 1]) + body[1:]
        return head + iv + body


class CbcSha1:
    """AES-CBC-128 (RFC 3602) with HMAC-SHA1-96 (RFC 2404)."""

    def __init__(self, seed: int):
        self.key = hashlib.sha256(b"cbc %d" % seed).digest()[:16]
        self.auth = hashlib.sha256(b"auth %d" % seed).digest()[:20]

    def esp_sa(self, src, dst, spi) -> str:
        return (f'"IPv4","{src}","{dst}","0x{spi:08x}","AES-CBC [RFC3602]","0x{self.key.hex()}",'
                f'"HMAC-SHA-1-96 [RFC2404]","0x{self.auth.hex()}"')

    def seal(self, spi: int, seq: int, pt: bytes, tamper: bool = False) -> bytes:
        iv = hashlib.sha256(b"iv %d %d" % (spi, seq)).digest()[:16]
        e = Cipher(algorithms.AES(self.key), modes.CBC(iv)).encryptor()
        body = struct.pack("!II", spi, seq) + iv + e.update(pt) + e.finalize()
        icv = hmac.new(self.auth, body, hashlib.sha1).digest()[:12]
        return body + (bytes([icv[0] ^ 1]) + icv[1:] if tamper else icv)


def inner_udp(n: int, port: int = 443, src: str = "192.168.1.1", dst: str = "192.168.2.1", ident: int = 7) -> bytes:
    return ipv4(src, dst, 17, udp(40000, port, bytes(range(256)) * (n // 256) + bytes(n % 256)), ident)


# --------------------------------------------------------------------------- the capture

A_SRC, A_DST = "10.0.0.1", "10.0.0.2"
SA_GCM, SA_TRANSPORT, SA_CBC, SA_NATT, SA_WRAP, SA_WRAP2, SA_NOKEY, SA_AH, SA_NESTED, SA_WRAP3 = (
    0x1001, 0x1002, 0x2001, 0x3001, 0x4001, 0x4002, 0x6001, 0x5001, 0x7001, 0x4003)
W3_SRC, W3_DST = "192.168.7.1", "192.168.7.2"


def build(rounds: int = 3):
    """(frames as (ts, bytes), esp_sa lines, what the common tunnel packets carried: {ts: inner packet},
    the number of ESP packets that must fail: integrity, bad padding, bad length)."""
    gcm, cbc, natt, wrap, transport, nested = Gcm(1), CbcSha1(2), Gcm(3), Gcm(4), Gcm(5), Gcm(6)
    keys = [gcm.esp_sa(A_SRC, A_DST, SA_GCM), transport.esp_sa(A_SRC, A_DST, SA_TRANSPORT),
            cbc.esp_sa("10.0.1.1", "10.0.1.2", SA_CBC), natt.esp_sa("10.0.2.1", "10.0.2.2", SA_NATT),
            wrap.esp_sa("10.0.3.1", "10.0.3.2", SA_WRAP), wrap.esp_sa("10.0.3.1", "10.0.3.2", SA_WRAP2),
            nested.esp_sa("192.168.5.1", "192.168.5.2", SA_NESTED), wrap.esp_sa(W3_SRC, W3_DST, SA_WRAP3)]
    frames, common = [], {}
    fail = {"integrity_failure": 0, "bad_padding": 0, "bad_length": 0}
    ts = [1_700_000_000.0]
    seqs = {}

    def add(frame: bytes, inner: bytes | None = None):
        ts[0] += 0.000123
        frames.append((round(ts[0], 6), frame))
        if inner is not None:
            common[round(ts[0], 6)] = inner

    def nxt(spi):
        seqs[spi] = seqs.get(spi, 0) + 1
        return seqs[spi]

    def esp_frame(src, dst, esp: bytes, natt: bool = False, vlan=None):
        ip = ipv4(src, dst, 17, udp(4500, 4500, esp)) if natt else ipv4(src, dst, 50, esp)
        return eth(ip, vlan=vlan)

    # an SA whose first packet binds its key early on (see the end)
    inner = inner_udp(64)
    add(esp_frame(W3_SRC, W3_DST, wrap.seal(SA_WRAP3, 5, trailer(inner, 4, 4))), inner)
    for r in range(rounds):
        # the common case, of each kind
        for size in (40, 300, 1200):
            inner = inner_udp(size, ident=r)
            add(esp_frame(A_SRC, A_DST, gcm.seal(SA_GCM, nxt(SA_GCM), trailer(inner, 4, 4))), inner)
            inner = ipv4("192.168.1.1", "192.168.2.1", 6, tcp(1234, 80, bytes(size)), r)
            add(esp_frame("10.0.1.1", "10.0.1.2", cbc.seal(SA_CBC, nxt(SA_CBC), trailer(inner, 4, 16))), inner)
            inner = ipv4("192.168.1.1", "192.168.2.1", 1, b"\x08\x00" + bytes(size), r)  # ICMP
            add(esp_frame("10.0.2.1", "10.0.2.2", natt.seal(SA_NATT, nxt(SA_NATT), trailer(inner, 4, 4)), True),
                inner)
        # plain traffic, IKE and a NAT-keepalive between them
        add(eth(ipv4("10.9.0.1", "10.9.0.2", 6, tcp(5555, 443, b"x" * 100))))
        add(eth(ipv4("10.9.0.1", "10.9.0.2", 17, udp(5353, 53, b"q" * 30))))
        add(eth(ipv4(A_SRC, A_DST, 17, udp(500, 500, bytes(8) + bytes(8) + b"\x21\x20\x22\x08" + bytes(4)
                                            + struct.pack("!I", 28)))))
        add(eth(ipv4(A_SRC, A_DST, 17, udp(4500, 4500, b"\xff"))))
        # the ways out of the common case, on the AES-GCM SA
        inner = inner_udp(100, ident=r)
        add(esp_frame(A_SRC, A_DST, gcm.seal(SA_GCM, nxt(SA_GCM), trailer(inner + bytes(37), 4, 4))), inner)  # TFC
        add(esp_frame(A_SRC, A_DST, gcm.seal(SA_GCM, nxt(SA_GCM), trailer(inner, 4, 4, pad=b"\xaa\xbb"))))
        add(esp_frame(A_SRC, A_DST, gcm.seal(SA_GCM, nxt(SA_GCM), trailer(inner, 4, 4), tamper=True)))
        fail["integrity_failure"] += 1
        add(esp_frame(A_SRC, A_DST, gcm.seal(SA_GCM, nxt(SA_GCM), trailer(inner, 4, 4, pad_len=250))))
        fail["bad_padding"] += 1
        add(esp_frame(A_SRC, A_DST, gcm.seal(SA_GCM, nxt(SA_GCM), trailer(inner_udp(60, port=500), 4, 4))))
        add(esp_frame(A_SRC, A_DST, gcm.seal(SA_GCM, nxt(SA_GCM), trailer(
            ipv4("192.168.1.1", "192.168.2.1", 17, udp(1, 2, bytes(50)), frag=0x2000), 4, 4))))
        add(esp_frame(A_SRC, A_DST, gcm.seal(SA_GCM, nxt(SA_GCM), trailer(
            ipv4("192.168.1.1", "192.168.2.1", 17, udp(1, 2, bytes(50)), options=b"\x01\x01\x01\x00"), 4, 4))))
        add(esp_frame(A_SRC, A_DST, gcm.seal(SA_GCM, nxt(SA_GCM), trailer(ipv6(udp(1, 2, bytes(70))), 41, 4))))
        add(esp_frame(A_SRC, A_DST, gcm.seal(SA_GCM, nxt(SA_GCM), trailer(bytes(30), 59, 4))))  # dummy packet
        add(esp_frame(A_SRC, A_DST, gcm.seal(SA_GCM, nxt(SA_GCM), trailer(b"", 4, 4))))  # nothing carried
        add(esp_frame(A_SRC, A_DST, gcm.seal(SA_GCM, nxt(SA_GCM), b"\x01")[:20]))  # shorter than the tag
        fail["bad_length"] += 1
        # transport mode: UDP and TCP after the outer header
        add(esp_frame(A_SRC, A_DST, transport.seal(SA_TRANSPORT, nxt(SA_TRANSPORT),
                                                   trailer(udp(7, 8, bytes(33)), 17, 4))))
        add(esp_frame(A_SRC, A_DST, transport.seal(SA_TRANSPORT, nxt(SA_TRANSPORT),
                                                   trailer(tcp(7, 8, bytes(44)), 6, 4))))
        # CBC: an ICV that fails, and a ciphertext that is not a multiple of the block
        add(esp_frame("10.0.1.1", "10.0.1.2", cbc.seal(SA_CBC, nxt(SA_CBC), trailer(inner, 4, 16), tamper=True)))
        fail["integrity_failure"] += 1
        add(esp_frame("10.0.1.1", "10.0.1.2", cbc.seal(SA_CBC, nxt(SA_CBC), trailer(inner, 4, 16))[:-13]))
        fail["bad_length"] += 1
        # the AES-GCM SA where the keyed decoder opens it: behind a VLAN tag, and under AH
        inner = inner_udp(80, ident=r)
        add(esp_frame(A_SRC, A_DST, gcm.seal(SA_GCM, nxt(SA_GCM), trailer(inner, 4, 4)), vlan=5))
        ah = struct.pack("!BBHII", 50, 4, 0, SA_AH + 1, r + 1) + bytes(12)  # RFC 4302: ICV 12 bytes, no key
        add(eth(ipv4(A_SRC, A_DST, 51, ah + gcm.seal(SA_GCM, nxt(SA_GCM), trailer(inner, 4, 4)))))
        add(eth(ipv4(A_SRC, A_DST, 51, struct.pack("!BBHII", 6, 4, 0, SA_AH + 6, r + 100) + bytes(12)
                     + tcp(1, 2, bytes(20)))))  # AH over TCP
        # under AH (an SPI each, so that each way's SaCrypto.ah calls show): transport mode, ESP inside
        # the tunnel, an ESP header cut short, IKE
        add(eth(ipv4(A_SRC, A_DST, 51, struct.pack("!BBHII", 50, 4, 0, SA_AH + 2, r + 200) + bytes(12)
                     + transport.seal(SA_TRANSPORT, nxt(SA_TRANSPORT), trailer(udp(7, 8, bytes(33)), 17, 4)))))
        deep = nested.seal(SA_NESTED, nxt(SA_NESTED), trailer(inner_udp(50), 4, 4))
        add(eth(ipv4(A_SRC, A_DST, 51, struct.pack("!BBHII", 50, 4, 0, SA_AH + 3, r + 300) + bytes(12)
                     + gcm.seal(SA_GCM, nxt(SA_GCM), trailer(ipv4("192.168.5.1", "192.168.5.2", 50, deep), 4, 4)))))
        add(eth(ipv4(A_SRC, A_DST, 51, struct.pack("!BBHII", 50, 4, 0, SA_AH + 4, r + 400) + bytes(12) + bytes(6))))
        add(eth(ipv4(A_SRC, A_DST, 51, struct.pack("!BBHII", 17, 4, 0, SA_AH + 5, r + 500) + bytes(12)
                     + udp(500, 500, bytes(40)))))
        # an SA without a key
        add(esp_frame(A_SRC, A_DST, Gcm(9).seal(SA_NOKEY, nxt(SA_NOKEY), trailer(inner, 4, 4))))
        # ESP inside the tunnel, raw and in UDP 4500: the keyed decoder opens it
        deep = nested.seal(SA_NESTED, nxt(SA_NESTED), trailer(inner_udp(50), 4, 4))
        add(esp_frame(A_SRC, A_DST, gcm.seal(SA_GCM, nxt(SA_GCM), trailer(
            ipv4("192.168.5.1", "192.168.5.2", 17, udp(4500, 4500, deep)), 4, 4))))
        deep = nested.seal(SA_NESTED, nxt(SA_NESTED), trailer(inner_udp(50), 4, 4))
        add(esp_frame(A_SRC, A_DST, gcm.seal(SA_GCM, nxt(SA_GCM), trailer(
            ipv4("192.168.5.1", "192.168.5.2", 50, deep), 4, 4))))
    # 32-bit counters that wrap: the SAs turn out to use extended sequence numbers, found by the
    # inline loop's way out (SA_WRAP) or by the keyed decoder (SA_WRAP2, behind a VLAN tag)
    inner = inner_udp(64)
    for spi in (SA_WRAP, SA_WRAP2):
        for seq, hi in ((0xFFFFFFFD, None), (0xFFFFFFFE, None), (0xFFFFFFFF, None), (1, 1), (2, 1), (3, 1)):
            vlan = 7 if spi == SA_WRAP2 and seq == 1 else None
            add(esp_frame("10.0.3.1", "10.0.3.2", wrap.seal(spi, seq, trailer(inner, 4, 4), seq_hi=hi), vlan=vlan),
                inner if hi is None else None)
            if spi == SA_WRAP and seq == 1:
                # once the SA uses extended sequence numbers, a packet sealed without the high half fails
                # (even where the inline loop had opened it, without the high half, before the wrap was found)
                add(esp_frame("10.0.3.1", "10.0.3.2", wrap.seal(spi, 0x10, trailer(inner, 4, 4))))
                fail["integrity_failure"] += 1
            add(esp_frame(A_SRC, A_DST, gcm.seal(SA_GCM, nxt(SA_GCM), trailer(inner, 4, 4))), inner)
    # SA_WRAP3 jumps to the end of its 32-bit counter, then wraps in a packet carried inside the AES-GCM
    # tunnel: the keyed decoder finds the wrap (from the highest sequence number, of the frames just before)
    for seq in (0xFFFFFFFE, 0xFFFFFFFF):
        add(esp_frame(W3_SRC, W3_DST, wrap.seal(SA_WRAP3, seq, trailer(inner, 4, 4))), inner)
    add(esp_frame(A_SRC, A_DST, gcm.seal(SA_GCM, nxt(SA_GCM), trailer(
        ipv4(W3_SRC, W3_DST, 50, wrap.seal(SA_WRAP3, 1, trailer(inner, 4, 4), seq_hi=1)), 4, 4))))
    return frames, keys, common, fail


SA_SHORT_UDP = 0x8001


def short_udp_frames(t: float, n: int = 6) -> tuple[list, str, list]:
    """ESP in UDP 4500 whose UDP length ends the datagram 4 bytes before its IP datagram
    does: the ESP packet is the UDP payload (RFC 3948 2.1), not what follows it.  (``n``
    frames from time ``t`` on, the SA's esp_sa line, the inner packets.)"""
    gcm = Gcm(8)
    src, dst = "10.0.8.1", "10.0.8.2"
    frames, inners = [], []
    for seq in range(1, n + 1):
        inner = inner_udp(40 + seq)
        esp = gcm.seal(SA_SHORT_UDP, seq, trailer(inner, 4, 4))
        frames.append((round(t + seq * 0.001, 6), eth(ipv4(src, dst, 17, udp(4500, 4500, esp) + b"\xde\xad\xbe\xef"))))
        inners.append(inner)
    return frames, gcm.esp_sa(src, dst, SA_SHORT_UDP), inners


def write_pcap(path, frames, nanosecond: bool = False):
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B23C4D if nanosecond else 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for ts, data in frames:
            sec = int(ts)
            sub = round((ts - sec) * (1e9 if nanosecond else 1e6))
            f.write(struct.pack("<IIII", sec, sub, len(data), len(data) + (4 if sec % 2 else 0)) + data)


def write_pcapng(path, frames):
    def block(btype, body):
        pad = -len(body) % 4
        return struct.pack("<II", btype, 12 + len(body) + pad) + body + bytes(pad) + struct.pack(
            "<I", 12 + len(body) + pad)
    with open(path, "wb") as f:
        f.write(block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))
        f.write(block(1, struct.pack("<HHI", 1, 0, 65535)))
        for ts, data in frames:
            usec = round(ts * 1e6)
            f.write(block(6, struct.pack("<IIIII", 0, usec >> 32, usec & 0xFFFFFFFF, len(data), len(data)) + data))


@pytest.fixture(scope="module")
def capture(tmp_path_factory):
    d = tmp_path_factory.mktemp("inline")
    frames, keys, common, fail = build()
    (d / "esp_sa").write_text("\n".join(keys) + "\n")
    write_pcap(d / "us.pcap", frames)
    write_pcap(d / "ns.pcap", frames, nanosecond=True)
    write_pcapng(d / "in.pcapng", frames)
    return d, common, fail


# --------------------------------------------------------------------------- the tests

def decrypt(cap, keys, out, fastpath, monkeypatch, only=False, block_bytes=None, few=None):
    monkeypatch.setenv("IPSECPCAP_FASTPATH", fastpath)
    if block_bytes:
        monkeypatch.setattr(decryptpcap, "open_capture", functools.partial(open_capture, block_bytes=block_bytes))
    if few is not None:  # blocks of fewer frames go frame by frame
        monkeypatch.setattr(decryptpcap, "_FEW", few)
    crypto = SaCrypto(load_keys([keys]))
    stats = decrypt_captures([str(cap)], crypto, str(out), only_decrypted=only)
    states = sorted((k, st.key.fingerprint if st.key else None, st.decrypted, st.integrity_failures,
                     st.other_failures, sorted(st.failures_by_kind.items()), st.esn, st.seq_hi, st.last_seq, st.tries)
                    for k, st in crypto.states.items())
    return out.read_bytes(), stats, states


@pytest.mark.parametrize("source", ["us.pcap", "ns.pcap", "in.pcapng"])
@pytest.mark.parametrize("out_name", ["out.pcap", "out.pcapng"])
@pytest.mark.parametrize("only", [False, True])
@pytest.mark.parametrize("block_bytes,few", [(None, None), (1500, 1), (9000, 1), (9000, None)])
def test_inline_decrypts_as_frame_by_frame(capture, tmp_path, monkeypatch, source, out_name, only, block_bytes, few):
    """Same bytes written, same counts, same SA states (bindings, ESN, sequence numbers),
    with blocks of every size: one block, or a few frames each (SAs learned in a block
    and opened inline in the next, the wrap found in the middle of one), and with the
    blocks of fewer than 16 frames taken frame by frame between the others (the wrap
    found there)."""
    d, _, _ = capture
    fast = decrypt(d / source, d / "esp_sa", tmp_path / ("fast-" + out_name), "vector", monkeypatch, only,
                   block_bytes, few)
    slow = decrypt(d / source, d / "esp_sa", tmp_path / ("slow-" + out_name), "packet", monkeypatch, only)
    assert fast[1] == slow[1]
    assert fast[2] == slow[2]
    assert fast[0] == slow[0]


@pytest.mark.parametrize("few", [1, None])
def test_esp_in_udp_ends_with_the_udp_length(tmp_path, monkeypatch, few):
    """Bytes after the UDP datagram (inside the IP datagram) are not ESP: the packets open,
    inline and frame by frame.  (Both opened up to the end of the IP datagram before, and
    every packet failed its tag.)"""
    frames, key, inners = short_udp_frames(1_700_000_000.0)
    write_pcap(tmp_path / "s.pcap", frames)
    (tmp_path / "esp_sa").write_text(key + "\n")
    fast = decrypt(tmp_path / "s.pcap", tmp_path / "esp_sa", tmp_path / "fast.pcap", "vector", monkeypatch, few=few)
    slow = decrypt(tmp_path / "s.pcap", tmp_path / "esp_sa", tmp_path / "slow.pcap", "packet", monkeypatch)
    assert fast == slow
    (state,) = slow[2]
    assert state[2:4] == (6, 0)  # decrypted, integrity failures
    assert all(inner in slow[0] for inner in inners)


def test_inline_output_is_what_was_sealed(capture, tmp_path, monkeypatch):
    """Every common tunnel packet comes out as its Ethernet header and the inner packet it was
    sealed with; the failures are the ones made; the 32-bit counter wrap is found."""
    d, common, fail = capture
    data, stats, states = decrypt(d / "us.pcap", d / "esp_sa", tmp_path / "out.pcap", "vector", monkeypatch)
    out = {}
    with open_capture(tmp_path / "out.pcap") as r:
        for b in r:
            for off, cap, ts in zip(b.offsets, b.caplens, b.ts):
                out[round(ts, 6)] = b.data[off:off + cap]
    assert len(out) == stats.frames == stats.written
    for ts, inner in common.items():
        assert out[ts] == MAC + b"\x08\x00" + inner
    by_spi = {k[1]: st for k, *st in ((s[0], s) for s in states)}
    failures = {}
    for (proto, spi, _addrs), _fp, _ok, integ, other, kinds, *_ in states:
        if proto == 50:
            failures["integrity_failure"] = failures.get("integrity_failure", 0) + integ
            for k, n in kinds:
                failures[k] = failures.get(k, 0) + n
    assert failures == fail
    assert stats.failed == sum(fail.values())
    for spi, opened in ((SA_WRAP, 6), (SA_WRAP2, 6), (SA_WRAP3, 4)):
        wrap = next(s for s in states if s[0][1] == spi)
        assert wrap[6] is True and wrap[7] == 1 and wrap[2] == opened  # esn, seq_hi, every packet opened
    assert next(s for s in states if s[0][1] == SA_NESTED)[2] == 9  # opened by the keyed decoder
    nokey = next(s for s in states if s[0][1] == SA_NOKEY)
    assert nokey[1] is None and nokey[2] == 0
    assert by_spi  # every SA has a state
