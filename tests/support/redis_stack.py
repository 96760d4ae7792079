"""A private Redis Stack server (Redis 7.4 + RediSearch 2.10) for the Query Engine tests.

``TTA_REDIS_STACK_URL`` names a Redis Stack (or Redis 8) server that is already running: the
tests use it as it is and never stop it. Give them a scratch server: they write, clear and drop
FT indexes under the key prefixes ``tta`` and ``app``. Otherwise the server is started with
the project's helper script ``../shared/redis-stack/redis-stack.sh`` (relative to the
repository root; ``TTA_REDIS_STACK_SCRIPT`` names another copy) on a free loopback port, once
per session, and stopped when pytest ends. Without the script the tests that
need it skip, saying so; under ``CI=true`` with the script present they must run (a server
that does not start fails them).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from .paths import ROOT
from .redis_servers import IN_CI, free_port

SCRIPT = Path("..") / "shared" / "redis-stack" / "redis-stack.sh"


def stack_script() -> Path | None:
    """The helper script, or None where this machine has none."""
    named = os.environ.get("TTA_REDIS_STACK_SCRIPT")
    path = Path(named) if named else ROOT / SCRIPT
    return path if path.is_file() else None


@dataclass
class StackServer:
    """A running Redis Stack server: its port and URL."""

    script: Path | None
    port: int
    url: str

    def stop(self) -> None:
        if self.script is None:  # a server the user runs (TTA_REDIS_STACK_URL): not ours to stop
            return
        subprocess.run(
            ["bash", str(self.script), "stop", str(self.port)],
            check=False,
            capture_output=True,
            timeout=30,
        )


_SHARED: list[StackServer] = []


def shared_stack(config: pytest.Config) -> StackServer:
    """The session's Redis Stack server, started on first use (see the module docstring)."""
    if _SHARED:
        return _SHARED[0]
    given = os.environ.get("TTA_REDIS_STACK_URL")
    if given:
        _SHARED.append(StackServer(None, 0, given))
        return _SHARED[0]
    script = stack_script()
    if script is None:
        pytest.skip(
            f"no Redis Stack: set TTA_REDIS_STACK_URL to a running scratch Redis Stack (or "
            f"Redis 8) server, or provide the helper script {SCRIPT} (relative to the repository "
            "root, or TTA_REDIS_STACK_SCRIPT)"
        )
    port = free_port()
    try:
        done = subprocess.run(
            ["bash", str(script), "start", str(port)],
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        err = getattr(exc, "stderr", "") or ""
        message = f"the Redis Stack helper script failed to start a server: {exc}\n{err[-2000:]}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    url = done.stdout.strip().splitlines()[-1]
    server = StackServer(script, port, url)
    config.add_cleanup(server.stop)
    _SHARED.append(server)
    return server


@pytest.fixture
def redis_stack(request: pytest.FixtureRequest) -> StackServer:
    """The session's private Redis Stack server (Query Engine: ``FT.*``)."""
    return shared_stack(request.config)
