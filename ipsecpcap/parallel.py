"""``--jobs``: one capture analysed by two processes, as a pipeline.

The vectorised fast path has two stages (see :mod:`ipsecpcap.vector`): the
:class:`~ipsecpcap.vector.Classifier` reads the capture, classifies its
blocks with numpy, decodes the rare frames and hands out
:class:`~ipsecpcap.vector.Batch` es of plain data; the
:class:`~ipsecpcap.vector.Applier` applies them to the tracker and parses
the IKE messages.  With ``jobs >= 2`` a child process runs the classifier and
sends the batches through a pipe (pickled), while this process applies them
as they come; it sends each batch before its grouping step
(:class:`~ipsecpcap.vector.Taken`), which this process does, so that the two
stages take about the same CPU time (measured on the 1M-packet benchmark
capture, the stages' CPU during the read: 0.62 s and 0.67 s; grouping every
second batch in the child, 0.79 s and 0.64 s; on 5M, 3.09 s and 3.16 s against
3.74 s and 2.93 s).  The batches cost pickling and the pipe: about 55 MB per
million packets, 0.07 s of CPU each way.  The child pickles a batch and a
thread of its own writes it into the pipe, whose buffer is widened to 1 MiB,
while the child goes on to the next batch: writing in the child's main thread
through the default 64 KiB buffer, each side waited for the other at every
batch (the read of the 5M capture took 3.6-3.7 s of wall time, 2.9-3.5 s
with the wider pipe alone, 2.4-3.0 s now, and 3.7-5.6 s in one process).  Both
stages see every frame in the same order as one process does, so the result
is the same, frame for frame and table for table -- not an approximation
from merging slices (``Tracker.merge`` would re-check each
SA's boundary but cannot carry an IP fragment pending at a slice boundary or
a TCP handshake split across it).  A pipeline has two stages, so more than
two jobs give nothing more; captures given together are analysed one after
the other, each with its own pipeline.

With keys, the child runs a :class:`~ipsecpcap.vector.KeyedClassifier`: the classifier
that also opens every ESP packet and sends what the packets carried as flow frames of the
batch (or as the keyed decoder's calls), and decodes AH, which it verifies, with the keyed
decoder.  The child's copy of the :class:`~ipsecpcap.sacrypto.SaCrypto` (forked with it)
opens the packets; at the end it sends back what it learnt (``export_state``) and this
process's copy takes it over (``adopt_state``), so that captures given together share it as
in one process.

The child is forked (it inherits the open standard input, for ``-``); what
it cannot read becomes the same :class:`~ipsecpcap.errors.InputError` as in
one process.
"""
from __future__ import annotations

import multiprocessing
import os
import queue
import sys
import threading
import traceback
from multiprocessing.reduction import ForkingPickler

from .errors import InputError
from .reader import CaptureError, _widen_pipe, open_capture
from .tracker import Tracker
from .vector import Applier, Classifier, KeyedClassifier


# Reading, numpy and grouping each batch's frames by SA and flow made the classifier the heavier
# stage: every HAND_OVER-th batch goes to the applier ungrouped, and the applier's process groups
# it.  Since the applier updates flows with numpy, every batch (see the module docstring).
HAND_OVER = 1


class _Progress:
    """What a progress callback reads of a reader, for a reader in another process."""

    def __init__(self, name: str, size: int | None):
        self.name = name
        self.size = size
        self.bytes_read = 0
        self.frames = 0


def read_error(path, e: BaseException) -> InputError | None:
    """The one-line input error for what opening or reading ``path`` raised (None: not an input error)."""
    if isinstance(e, CaptureError):
        return InputError(str(e))
    if isinstance(e, FileNotFoundError):
        return InputError(f"{path}: no such file")
    if isinstance(e, IsADirectoryError):
        return InputError(f"{path}: is a directory, not a capture")
    if isinstance(e, PermissionError):
        return InputError(f"{path}: permission denied")
    if isinstance(e, OSError):
        return InputError(f"{path}: cannot read: {e.strerror or e}")
    return None


class _Sender:
    """The child's end of the pipe: a message is pickled by the caller and written by a
    thread, so the child classifies the next batch while the last one drains into the pipe
    as fast as the parent reads it (at most ``depth`` waiting)."""

    def __init__(self, conn, depth: int = 2):
        self.conn = conn
        self.queue: queue.Queue = queue.Queue(depth)
        self.failed: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while True:
            data = self.queue.get()
            if data is None:
                return
            if self.failed is None:
                try:
                    self.conn.send_bytes(data)
                except BaseException as e:  # noqa: BLE001 - the parent is gone: the child stops sending
                    self.failed = e

    def send(self, msg) -> None:
        if self.failed is not None:
            raise self.failed
        self.queue.put(ForkingPickler.dumps(msg))

    def close(self) -> None:
        """Send what is waiting, then close the connection."""
        self.queue.put(None)
        self.thread.join()
        self.conn.close()


def _classify(path, block_bytes: int, conn, stdin_fd: int | None, crypto=None) -> None:
    """The child: read and classify, send ("batch", Batch, progress) ... then ("end", summary);
    with ``crypto`` (keys), open ESP and verify AH with it and send back what it learnt."""
    conn = _Sender(conn)
    try:
        source = os.fdopen(stdin_fd, "rb") if stdin_fd is not None else path
        c = Classifier(hand_over=HAND_OVER) if crypto is None else KeyedClassifier(crypto, hand_over=HAND_OVER)
        first = last = None
        with open_capture(source, block_bytes=block_bytes, name="-" if stdin_fd is not None else None) as reader:
            conn.send(("start", reader.name, reader.size))
            for block in reader:
                span = block.span()
                if span is not None:
                    first = span[0] if first is None else min(first, span[0])
                    last = span[1] if last is None else max(last, span[1])
                for b in c.add(block):
                    conn.send(("batch", b, reader.bytes_read, reader.frames))
            b = c.flush()
            if b is not None:
                conn.send(("batch", b, reader.bytes_read, reader.frames))
            c.decoder.finish()
            conn.send(("end", reader.frames, [f"{reader.name}: {w}" for w in reader.warnings], first, last,
                       c.reasm.stats(), c.stats, None if crypto is None else crypto.export_state()))
    except BaseException as e:  # noqa: BLE001 - everything goes back to the parent, which decides
        err = read_error(path, e)
        if err is not None:
            conn.send(("input_error", str(err)))
        else:
            conn.send(("crash", f"{type(e).__name__}: {e}", traceback.format_exc()))
    finally:
        conn.close()


def analyze_capture_pipelined(path, *, block_bytes: int = 4 << 20, progress=None, crypto=None,
                              keep_ike_ciphertext: bool = True) -> Tracker:
    """:func:`ipsecpcap.analysis.analyze_capture` in two processes; the same result (``crypto`` and
    ``keep_ike_ciphertext`` as there).  With ``crypto``, the child opens the packets (see
    :class:`KeyedClassifier`); ``crypto`` then takes over what the child's copy of it learnt."""
    from .analysis import capture_name

    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    _widen_pipe(send.fileno())  # batches of several MB: with 64 KiB the two took turns a hundred times each
    stdin_fd = None
    if os.fspath(path) == "-":
        stdin_fd = os.dup(sys.stdin.fileno())  # multiprocessing gives the child /dev/null as stdin
    child = ctx.Process(target=_classify, args=(path, block_bytes, send, stdin_fd, crypto), daemon=True)
    child.start()
    send.close()
    if stdin_fd is not None:
        os.close(stdin_fd)
    tracker = Tracker(capture_name(path), keep_ike_ciphertext)
    applier = Applier(tracker)
    shown = None
    try:
        while True:
            try:
                msg = recv.recv()
            except EOFError:
                raise RuntimeError(f"{path}: the classifier process ended without a result") from None
            kind = msg[0]
            if kind == "batch":
                applier.apply(msg[1])
                if progress is not None:
                    shown.bytes_read, shown.frames = msg[2], msg[3]
                    progress(shown)
            elif kind == "start":
                shown = _Progress(msg[1], msg[2])
            elif kind == "end":
                frames, warnings, first, last, reassembly, stats, learnt = msg[1:]
                break
            elif kind == "input_error":
                raise InputError(msg[1])
            else:
                raise RuntimeError(f"classifier process failed: {msg[1]}\n{msg[2]}")
    finally:
        recv.close()
        child.join(timeout=5)
        if child.is_alive():
            child.kill()
            child.join()
    if crypto is not None:
        crypto.adopt_state(learnt)
    tracker.frames = frames
    tracker.warnings.extend(warnings)
    tracker.first_ts, tracker.last_ts = first, last
    tracker.counts = applier.counts
    tracker.reassembly = reassembly
    return tracker
