"""The writer process of ``shulian serve``: one sequencer that decides and commits for every HTTP worker.

An HTTP worker holds its GIL for most of a request (parsing, authenticating, answering). A worker that
also committed held the database's writer lock while waiting for its own GIL, and two workers took
that lock in turn, each re-reading what the other had committed first: on 2 cores a commit of 8.8
releases held the lock 23 ms for 11 ms of work (docs/SCALE.md). So ``serve`` starts this process beside
its workers: they parse, authenticate and answer; it decides access requests and commits each
decision with its release (``api.services.decide_and_release``), and appends the entries they take
(``api.services.append_entry``: a record commit with its vault row), group-committing what all of them
send, with no HTTP thread in its way. So a replica has one sequencer and one cached state: each worker
with its own would replay the whole ledger on its first append (~30 s at 10^6 entries), hold another
copy of the state, and contend with the others for the writer lock.

The workers reach it over a Unix socket named by ``SHULIAN_WRITER_SOCKET``, in a fresh directory only
the service's user may enter; the writer also checks that each peer runs as that user. A request and its
answer are one frame each (``ledger.frames``), one request at a time per connection and a connection
per request in flight. One thread serves them all: it takes every request that has arrived, decides
them together in one commit where they fit (``decide_and_release_many``) and answers each; a thread
per connection cost a GIL hand-off and a wake-up per request, and with them ~1.4 ms of the writer's
CPU a release against ~0.9 ms now (docs/SCALE.md). A worker that cannot reach the writer decides and
appends in its own process, on its own sequencer (several writers share a ledger safely, only more slowly); a
worker whose writer ends in the middle of a request answers 503: whatever the writer committed is on
the ledger, and a signed request is decided at most once.

``python -m api.writer SOCKET`` runs it over SHULIAN_DB and SHULIAN_HOME, as a worker would.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import pickle
import select
import selectors
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from api.dbfaults import database_fault
from ledger.errors import LedgerError
from ledger.frames import FRAME_LENGTH, decode_frame, encode_frame, frame_size, read_frame, take_frames, write_frame
from ledger.store import StorageError

if TYPE_CHECKING:
    from api.node import Node
    from api.services import AccessAsk, AccessResult

SOCKET_VARIABLE = "SHULIAN_WRITER_SOCKET"
RECONNECT_AFTER_S = 1.0  # after a failed connect, workers decide here for this long before trying again
START_TIMEOUT_S = 120.0
PARENT_POLL_S = 0.5
RECEIVE_BYTES = 1 << 16

log = logging.getLogger("shulian.writer")


def _pause(seconds: float) -> None:
    """Sleep on an event's timeout: ``time.sleep`` fails (EINVAL) under libfaketime with a shifted clock."""
    threading.Event().wait(seconds)


class WriterGone(StorageError):
    title = "Writer process unavailable"
    retry_after = 1


class Refusal(LedgerError):
    """A refusal from the writer process whose own class does not travel: same line, status and title."""

    def __init__(self, message: str, status: int, title: str | None, retry_after: int | None) -> None:
        super().__init__(message)
        self.status = status
        self.title = title
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[Any, ...]:
        return (Refusal, (str(self), self.status, self.title, self.retry_after))


# -- the workers' side ------------------------------------------------------------------------------


class _Backoff:
    """After a failed connect, the workers decide here for ``RECONNECT_AFTER_S`` before trying again
    (the first failure logged, not every request's)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._until = 0.0
        self._lock = threading.Lock()

    def waiting(self) -> bool:
        return time.monotonic() < self._until

    def failed(self, exc: OSError) -> None:
        with self._lock:
            first = time.monotonic() >= self._until
            self._until = time.monotonic() + RECONNECT_AFTER_S
        if first:
            log.warning("writer process not reachable at %s (%s): deciding in this worker", self.path, exc)


class WriterClient:
    """A worker's connections to its node's writer process (thread-safe)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._idle: list[tuple[socket.socket, io.BufferedIOBase]] = []
        self._lock = threading.Lock()
        self._backoff = _Backoff(path)

    def access(
        self, requester: str, request_hash: str, *, dataset: str, record: str, fields: list[str], purpose: str
    ) -> AccessResult | None:
        """``decide_and_release`` in the writer process; None if it could not be reached (nothing sent)."""
        from api.services import AccessAsk  # not at import: api.services imports this module

        op = ("access", AccessAsk(requester, request_hash, dataset, record, list(fields), purpose))
        result: AccessResult | None = self.call(op)
        return result

    def call(self, op: tuple[Any, ...]) -> Any:
        """Send ``op``, return the writer's answer or raise its refusal; None if nothing reached it."""
        conn = self._take()
        if conn is None:
            return None
        stream = conn[1]
        try:
            write_frame(stream, op)
        except OSError:  # the writer reads whole frames only: a part of one is never acted on
            _close(conn)
            return None
        try:
            kind, value = read_frame(stream)
        except (OSError, EOFError, pickle.UnpicklingError) as exc:
            _close(conn)
            raise WriterGone(_GONE) from exc
        with self._lock:
            self._idle.append(conn)
        if kind == "error":
            raise value
        return value

    def _take(self) -> tuple[socket.socket, io.BufferedIOBase] | None:
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if _usable(conn[0]):
                    return conn
                _close(conn)
        if self._backoff.waiting():
            return None
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.connect(self.path)
        except OSError as exc:
            sock.close()
            self._backoff.failed(exc)
            return None
        return sock, sock.makefile("rwb")

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            _close(conn)


_GONE = (
    "the writer process ended during this request; what it committed is on the ledger "
    "(a signed request is decided at most once)"
)


class AsyncWriterClient:
    """``WriterClient`` on the HTTP worker's event loop: the same frames, one request in flight per
    connection, idle connections kept. The request waits for its answer as a coroutine, not as a
    pool thread blocked on a socket: no thread is woken, and no GIL handed over, per request."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._backoff = _Backoff(path)

    async def access(self, ask: AccessAsk) -> AccessResult | None:
        """``decide_and_release`` in the writer process; None if it could not be reached (nothing sent)."""
        result: AccessResult | None = await self.call(("access", ask))
        return result

    async def call(self, op: tuple[Any, ...]) -> Any:
        """Send ``op``, return the writer's answer or raise its refusal; None if nothing reached it."""
        conn = await self._take()
        if conn is None:
            return None
        reader, writer = conn
        try:
            writer.write(encode_frame(op))
            await writer.drain()
        except OSError:  # the writer reads whole frames only: a part of one is never acted on
            writer.close()
            return None
        answered = False
        try:
            size = frame_size(await reader.readexactly(FRAME_LENGTH))
            kind, value = decode_frame(await reader.readexactly(size))
            answered = True
        except (OSError, EOFError, pickle.UnpicklingError) as exc:  # IncompleteReadError is an EOFError
            raise WriterGone(_GONE) from exc
        finally:
            if answered:
                self._idle.append(conn)
            else:  # gone, or this request was cancelled (its client left): the answer is not read here
                writer.close()
        if kind == "error":
            raise value
        return value

    async def _take(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # connections belong to the loop that opened them
            self._idle, self._loop = [], loop
        while self._idle:
            reader, writer = self._idle.pop()
            if not reader.at_eof() and not writer.is_closing():
                return reader, writer
            writer.close()
        if self._backoff.waiting():
            return None
        try:
            return await asyncio.open_unix_connection(self.path)
        except OSError as exc:
            self._backoff.failed(exc)
            return None

    def close(self) -> None:
        idle, self._idle = self._idle, []
        for _, writer in idle:
            with contextlib.suppress(RuntimeError):  # its loop is closed already
                writer.close()


def _usable(sock: socket.socket) -> bool:
    """An idle connection with nothing to read: readable would mean the writer closed it (EOF)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return False
    return not readable


def _close(conn: tuple[socket.socket, io.BufferedIOBase]) -> None:
    with contextlib.suppress(OSError):
        conn[1].close()
    with contextlib.suppress(OSError):
        conn[0].close()


def client_from_env() -> WriterClient | None:
    path = os.environ.get(SOCKET_VARIABLE)
    return WriterClient(path) if path else None


def async_client_from_env() -> AsyncWriterClient | None:
    path = os.environ.get(SOCKET_VARIABLE)
    return AsyncWriterClient(path) if path else None


# -- the writer's side ------------------------------------------------------------------------------


def _portable(exc: LedgerError) -> LedgerError:
    """``exc`` if it survives a pickle round trip as itself, else a ``Refusal`` saying the same.

    A database failure is judged here, where its cause chain is (a pickle drops it): the worker answers
    what ``api.dbfaults`` makes of it (503 unreachable or read-only, 507 out of space, with Retry-After),
    and the cause goes to this process's log."""
    if isinstance(exc, StorageError) and not isinstance(exc, WriterGone):
        fault = database_fault(exc)
        if fault is not None:
            log.warning("database: %s", " ".join(str(exc).split()))
            return Refusal(fault.detail, fault.status, fault.title, fault.retry_after)
    try:
        back = pickle.loads(pickle.dumps(exc))  # noqa: S301 - our own bytes
        if type(back) is type(exc) and str(back) == str(exc):
            return exc
    except Exception:  # noqa: S110 - any failure: send the portable form
        pass
    return Refusal(str(exc), exc.status, getattr(exc, "title", None), getattr(exc, "retry_after", None))


def _narrowed(result: AccessResult) -> AccessResult:
    """Each receipt with only the nodes of its own proof, not its whole batch's (less to send)."""
    result.receipts = [
        r._replace(proofs=r.proofs.narrowed(r.seq, r.tree_size)) if r.proofs is not None else r for r in result.receipts
    ]
    return result


def _failure(exc: Exception) -> StorageError:
    """What the workers are told of an error that escaped the writer's calls (a driver's error the
    sequencer does not wrap, say): caused by it, so ``_portable`` judges a database failure by it."""
    failed = StorageError(f"the writer process failed: {exc}")
    failed.__cause__ = exc
    return failed


def dispatch_many(node: Node, ops: list[Any]) -> list[tuple[str, Any]]:
    """The answers to ``ops``, in order: ("ok", value) or ("error", a LedgerError to raise in the worker).

    The entries among them are appended by one call, then the access requests decided by one more
    (one commit each where they fit).
    """
    from api.services import (  # not at import: api.services imports this module
        AccessAsk,
        VaultRecord,
        append_entries,
        decide_and_release_many,
    )

    replies: list[tuple[str, Any] | None] = [None] * len(ops)
    asks: list[tuple[int, AccessAsk]] = []
    entries: list[tuple[int, tuple[bytes, VaultRecord | None]]] = []
    for i, op in enumerate(ops):
        if isinstance(op, tuple) and len(op) == 2 and op[0] == "access" and isinstance(op[1], AccessAsk):
            asks.append((i, op[1]))
        elif (
            isinstance(op, tuple)
            and len(op) == 3
            and op[0] == "append"
            and isinstance(op[1], bytes)
            and (op[2] is None or isinstance(op[2], VaultRecord))
        ):
            entries.append((i, (op[1], op[2])))
        elif isinstance(op, tuple) and op:
            replies[i] = ("error", StorageError(f"the writer process does not know {op[0]!r}"))
        else:
            replies[i] = ("error", StorageError("bad request"))
    if entries:
        try:
            appended = append_entries(node, [item for _, item in entries])
        except LedgerError as exc:
            appended = [exc] * len(entries)
        except Exception as exc:
            log.exception("writer: appending %d entries failed", len(entries))
            appended = [_failure(exc)] * len(entries)
        for (i, _), done in zip(entries, appended, strict=True):
            replies[i] = ("error", _portable(done)) if isinstance(done, LedgerError) else ("ok", done)
    if asks:
        try:
            results = decide_and_release_many(node, [ask for _, ask in asks])
        except LedgerError as exc:  # the whole batch refused (the keys unavailable, say)
            results = [exc] * len(asks)
        except Exception as exc:
            log.exception("writer: deciding %d access requests failed", len(asks))
            results = [_failure(exc)] * len(asks)
        for (i, _), result in zip(asks, results, strict=True):
            replies[i] = ("error", _portable(result)) if isinstance(result, LedgerError) else ("ok", _narrowed(result))
    return [reply or ("error", StorageError("bad request")) for reply in replies]


def _same_user(conn: socket.socket) -> bool:
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return bool(uid == os.getuid())


class _Peer:
    """A worker's connection and the bytes received on it that do not make a whole frame yet."""

    __slots__ = ("buffer", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()


class _Loop:
    """One thread answers every worker: it reads the requests that have arrived on all connections,
    decides them together (one commit where they fit) and answers each. No thread per connection: a
    request costs no thread switch and no wait for the GIL."""

    def __init__(self, node: Node, listener: socket.socket) -> None:
        self.node = node
        self.listener = listener
        self.selector = selectors.DefaultSelector()
        self.selector.register(listener, selectors.EVENT_READ, None)

    def run(self) -> None:
        while True:
            waiting: list[tuple[_Peer, Any]] = []
            if self._gather(self.selector.select(), waiting):  # new connections: their requests too
                self._gather(self.selector.select(0), waiting)
            if waiting:
                replies = dispatch_many(self.node, [op for _, op in waiting])
                for (peer, _), reply in zip(waiting, replies, strict=True):
                    self._send(peer, reply)

    def _gather(self, events: list[tuple[selectors.SelectorKey, int]], waiting: list[tuple[_Peer, Any]]) -> bool:
        """Add the requests received to ``waiting``; whether new connections were accepted."""
        accepted = False
        for key, _ in events:
            if key.data is None:
                accepted = self._accept() or accepted
            else:
                waiting.extend((key.data, op) for op in self._receive(key.data))
        return accepted

    def _accept(self) -> bool:
        """Accept every connection waiting (the listener does not block); whether there was one."""
        accepted = False
        while True:
            try:
                conn, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return accepted
            accepted = True
            if not _same_user(conn):
                conn.close()
                continue
            conn.setblocking(True)  # answers are written whole (each connection has one request in flight)
            self.selector.register(conn, selectors.EVENT_READ, _Peer(conn))

    def _receive(self, peer: _Peer) -> list[Any]:
        try:
            data = peer.sock.recv(RECEIVE_BYTES)
        except OSError:
            data = b""
        if not data:  # the worker closed it (an unfinished frame in it is never acted on)
            self._drop(peer)
            return []
        peer.buffer += data
        try:
            return take_frames(peer.buffer)
        except Exception:  # not a frame of ours: drop the connection, nothing acted on
            self._drop(peer)
            return []

    def _send(self, peer: _Peer, reply: tuple[str, Any]) -> None:
        try:
            peer.sock.sendall(encode_frame(reply))
        except OSError:
            self._drop(peer)

    def _drop(self, peer: _Peer) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(peer.sock)
        with contextlib.suppress(OSError):
            peer.sock.close()


def _follow_parent(parent: int, path: str) -> None:
    """End this process once the ``serve`` that started it is gone (killed, or ended by a signal that
    skipped its clean-up), removing its socket and directory: a writer never outlives its server."""
    while os.getppid() == parent:
        _pause(PARENT_POLL_S)
    remove_socket(Path(path))
    os._exit(0)


def serve(path: str) -> None:
    """Listen on ``path`` and answer the workers until killed or the parent ``serve`` ends."""
    from api.node import Node

    threading.Thread(target=_follow_parent, args=(os.getppid(), path), daemon=True, name="writer-parent").start()
    os.environ.pop(SOCKET_VARIABLE, None)  # this process decides itself
    node = Node()
    _ = node.sequencer  # open the log and service keys now: a bad setting fails here, not on a request
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    listener.bind(path)
    os.chmod(path, 0o600)
    listener.listen(512)
    listener.setblocking(False)
    log.info("writer process listening on %s", path)
    # Replay the ledger into the sequencer's cache before the first request, not in it (tens of seconds
    # at 10^6 entries). The workers' requests queue on the socket meanwhile; their own /readyz waits for
    # their views, which replay the same ledger at the same time.
    node.sequencer.warm()
    _Loop(node, listener).run()


# -- started by ``serve`` ---------------------------------------------------------------------------


def remove_socket(path: Path) -> None:
    """Remove the socket and the private directory ``socket_path`` made for it (whatever is left of them)."""
    with contextlib.suppress(OSError):
        path.unlink()
    with contextlib.suppress(OSError):
        path.parent.rmdir()


def socket_path() -> Path:
    """Where this ``serve`` run's writer listens: a fresh private directory (mode 0700) of its own, not
    under SHULIAN_HOME (which holds the keys and is what a backup copies: a socket is not data)."""
    return Path(tempfile.mkdtemp(prefix="shulian-writer-")) / "writer.sock"


def start() -> tuple[subprocess.Popen[bytes], Path]:
    """Start the writer process for this ``serve`` run; return it and its socket once it answers."""
    path = socket_path()
    proc = subprocess.Popen([sys.executable, "-m", "api.writer", str(path)])
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if proc.poll() is not None:
            remove_socket(path)
            raise StorageError(f"the writer process exited at start (status {proc.returncode})")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
            return proc, path
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                remove_socket(path)
                raise StorageError(f"the writer process did not answer on {path} in {START_TIMEOUT_S:.0f} s") from None
            _pause(0.05)
        finally:
            probe.close()


def stop(proc: subprocess.Popen[bytes], path: Path) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    remove_socket(path)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m api.writer SOCKET_PATH (started by `shulian serve`)", file=sys.stderr)
        return 2
    from api import logs
    from api.settings import load_settings

    settings = load_settings(export=False)
    logs.configure(settings.effective_log_format, settings.log_level)
    try:
        serve(args[0])
    except KeyboardInterrupt:
        return 130
    except (LedgerError, OSError) as exc:
        print(f"shulian writer: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    # Run as the importable ``api.writer``, not as ``__main__``: a class this process pickles for the
    # workers (a ``Refusal``) must name a module they can import.
    from api import writer as importable

    raise SystemExit(importable.main())
