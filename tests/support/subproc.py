"""Run Python in a fresh interpreter, isolated from this process's telemetry and Redis settings.

Tests that install global OpenTelemetry providers, or run examples and scripts, do it here:
the global providers can be set once per process, and examples must run as users run them.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

_PROXIES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def clean_env(**env: str) -> dict[str, str]:
    """This environment minus OTEL_*, REDIS_URL and proxies (loopback only), plus ``env``."""
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("OTEL_", "REDIS_URL")) and k.lower() not in _PROXIES
    }
    environ["NO_PROXY"] = environ["no_proxy"] = "127.0.0.1,localhost"
    environ.update(env)
    return environ


def run_python(*args: str, **env: str) -> str:
    """Run ``python -W error ARGS`` with :func:`clean_env`; assert it succeeds; return stdout."""
    out = subprocess.run(
        [sys.executable, "-W", "error", *args],
        capture_output=True,
        text=True,
        env=clean_env(**env),
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, f"python {' '.join(args)[:80]} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


def run_code(code: str, **env: str) -> str:
    """Run the (dedented) source ``code`` with :func:`run_python`."""
    return run_python("-c", textwrap.dedent(code), **env)
