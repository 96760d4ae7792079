"""Faults on real servers: SIGKILL mid-stream, a hung or sleeping server, authentication, TLS.

Every server here is private to its test (``fresh_server`` or ``running_server``), runs with
``appendfsync always`` where a restart must keep what was acknowledged, and is stopped at
teardown.
"""

from __future__ import annotations

import asyncio
import logging
import random
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from tta_dev_primitives import (
    FallbackBackend,
    InMemoryBackend,
    MemoryBackendError,
    MemoryPrimitive,
    RedisBackend,
)

from tests.support.redis_servers import (
    FLAVOURS,
    RedisServer,
    check_index,
    fast_failing,
    running_server,
)

pytestmark = [pytest.mark.redis, pytest.mark.slow]

KEYS = [f"k{i}" for i in range(40)]


async def verify(url: str, namespace: str, model: dict[str, Any], order: list[str]) -> None:
    """Redis holds exactly ``model`` (in LRU order ``order``) and a consistent index."""
    backend = RedisBackend.from_url(url, max_size=None)
    memory = MemoryPrimitive(backend=backend, namespace=namespace)
    assert await memory.keys() == order
    assert await memory.get_many(KEYS) == model
    await memory.search("value")
    client = aioredis.from_url(url)
    counts = await check_index(client, backend.key_prefix((namespace,)))
    assert counts["records"] == len(model)
    await client.aclose()
    await backend.aclose()


async def test_sigkill_mid_stream_with_fallback_loses_nothing(fresh_server: RedisServer) -> None:
    """Kill -9 during a stream of adds/deletes, restart: the caller never sees an error, and
    after recovery every acknowledged write and delete is in Redis, last write winning."""
    backend = FallbackBackend(
        fast_failing(fresh_server.url), InMemoryBackend(None), probe_interval=0.05
    )
    memory = MemoryPrimitive(backend=backend, namespace="stream")
    rng = random.Random(7)
    model: dict[str, Any] = {}
    order: list[str] = []
    killed = restarted = False

    async def chaos() -> None:
        nonlocal killed, restarted
        await asyncio.sleep(0.15)
        await asyncio.to_thread(fresh_server.kill)
        killed = True
        await asyncio.sleep(0.3)
        await asyncio.to_thread(fresh_server.restart)
        restarted = True

    chaos_task = asyncio.create_task(chaos())
    step = 0
    while not restarted or step < 1200:
        key = rng.choice(KEYS)
        if rng.random() < 0.75:
            value = {"value": f"value {key} at step {step}", "step": step}
            await memory.add(key, value)
            model[key] = value
            if key in order:
                order.remove(key)
            order.append(key)
        else:
            await memory.delete(key)
            model.pop(key, None)
            if key in order:
                order.remove(key)
        step += 1
        await asyncio.sleep(0)  # let the chaos task run
    await chaos_task
    assert killed
    assert backend.fallback_activations >= 1
    for _ in range(200):
        if await backend.recover():
            break
        await asyncio.sleep(0.05)
    assert not backend.degraded
    assert backend.pending == 0
    assert memory.is_using_redis()
    await verify(fresh_server.url, "stream", model, order)
    await backend.aclose()


async def test_sigkill_without_fallback_raises_and_writes_nothing_by_half(
    fresh_server: RedisServer,
) -> None:
    """Without fallback, operations against a killed server raise MemoryBackendError; after a
    restart Redis holds exactly the acknowledged writes, with a consistent index."""
    memory = MemoryPrimitive(backend=fast_failing(fresh_server.url), namespace="strict")
    rng = random.Random(11)
    model: dict[str, Any] = {}
    order: list[str] = []
    failures: list[tuple[int, MemoryBackendError]] = []
    for step in range(600):
        if step == 200:
            fresh_server.kill()
        if step == 400:
            fresh_server.restart()
        key = rng.choice(KEYS)
        value = {"value": f"value {key} {step}"}
        try:
            if rng.random() < 0.8:
                await memory.add(key, value)
                model[key] = value
                if key in order:
                    order.remove(key)
                order.append(key)
            elif await memory.delete(key) or key in model:
                model.pop(key, None)
                order.remove(key)
        except MemoryBackendError as exc:
            failures.append((step, exc))
    assert [step for step, _ in failures] == list(range(200, 400))
    assert {exc.backend for _, exc in failures} == {"redis"}
    await verify(fresh_server.url, "strict", model, order)
    await memory.backend.aclose()


async def test_sigkill_during_a_batch_leaves_whole_records(fresh_server: RedisServer) -> None:
    """A kill in the middle of big batches leaves no record half-written: value, recency and
    index stay consistent whatever was applied."""
    backend = fast_failing(fresh_server.url)
    payload = "value " + "x" * 2000

    async def writer() -> None:
        for round_ in range(50):
            batch = [(f"b{round_}-{i}", f"{payload} {i}") for i in range(300)]
            await MemoryPrimitive(backend=backend, namespace="batch").add_many(batch)

    task = asyncio.create_task(writer())
    await asyncio.sleep(0.2)
    fresh_server.kill()
    with pytest.raises(MemoryBackendError):
        await task
    fresh_server.restart()
    memory = MemoryPrimitive(backend=RedisBackend.from_url(fresh_server.url), namespace="batch")
    size = await memory.size()
    assert size > 0
    for key in await memory.keys():
        assert (await memory.get(key)).startswith(payload)
    await memory.search("value")
    client = aioredis.from_url(fresh_server.url)
    await check_index(client, memory.backend.key_prefix(("batch",)))  # type: ignore[attr-defined]
    await client.aclose()
    await memory.backend.aclose()
    await backend.aclose()


async def test_hung_server_times_out_instead_of_hanging(fresh_server: RedisServer) -> None:
    """A server that stops answering (SIGSTOP) gives MemoryBackendError within the bounded
    retry budget, or, with fallback, an answer from memory; never a hang."""
    strict = RedisBackend.from_url(
        fresh_server.url, socket_timeout=0.3, socket_connect_timeout=0.3, retries=1
    )
    lenient = FallbackBackend(
        RedisBackend.from_url(fresh_server.url, socket_timeout=0.3, retries=0),
        InMemoryBackend(),
        probe_interval=0.1,
    )
    strict_memory = MemoryPrimitive(backend=strict, namespace="hang")
    lenient_memory = MemoryPrimitive(backend=lenient, namespace="hang")
    await strict_memory.add("k", "before")
    await lenient_memory.add("k", "before")
    fresh_server.pause()
    try:
        start = time.monotonic()
        with pytest.raises(MemoryBackendError, match="timed out"):
            await strict_memory.get("k")
        assert time.monotonic() - start < 1.5  # one socket_timeout: timeouts are not retried
        start = time.monotonic()
        assert await lenient_memory.get("k") == "before"  # from the mirror
        await lenient_memory.add("k", "during")
        assert time.monotonic() - start < 1.5
        assert lenient.degraded
    finally:
        fresh_server.resume()
    for _ in range(100):
        if await lenient.recover():
            break
        await asyncio.sleep(0.05)
    assert await lenient_memory.get("k") == "during"
    # The timed-out connection was dropped, not left out of step with the server.
    for _ in range(3):
        assert await strict_memory.get("k") == "during"
        assert await strict_memory.size() == 1
    await strict.aclose()
    await lenient.aclose()


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_debug_sleep_beyond_socket_timeout(flavour: str) -> None:
    """DEBUG SLEEP longer than the socket timeout: MemoryBackendError, not a hang."""
    with running_server(flavour, ["--enable-debug-command", "yes"]) as server:
        backend = RedisBackend.from_url(server.url, socket_timeout=0.2, retries=0)
        await backend.size(("x",))
        sleeper = aioredis.from_url(server.url)
        nap = asyncio.create_task(sleeper.execute_command("DEBUG", "SLEEP", "1.0"))
        await asyncio.sleep(0.05)
        start = time.monotonic()
        with pytest.raises(MemoryBackendError, match="timed out"):
            await backend.size(("x",))
        assert time.monotonic() - start < 0.9
        await nap
        assert await backend.size(("x",)) == 0  # answers again once awake
        await sleeper.aclose()
        await backend.aclose()


# -- authentication -----------------------------------------------------------------------------

AUTH_ARGS = [
    "--requirepass",
    "s3cret",
    "--user",
    "alice",
    "on",
    ">wonderland",
    "~*",
    "&*",
    "+@all",
    "--user",
    "reader",
    "on",
    ">pages",
    "~*",
    "+@read",
    "+ping",
]


@pytest.fixture(params=FLAVOURS)
def auth_server(request: pytest.FixtureRequest) -> Any:
    """A private server with a default-user password and two ACL users."""
    with running_server(request.param, AUTH_ARGS) as server:
        yield server


async def test_credentials_in_the_url_work(auth_server: RedisServer) -> None:
    """The default user's password and an ACL user's name and password both work."""
    for url in (auth_server.url_with("", "s3cret"), auth_server.url_with("alice", "wonderland")):
        memory = MemoryPrimitive(redis_url=url, fallback=False, namespace="auth")
        await memory.add("k", "v")
        assert await memory.get("k") == "v"
        await memory.aclose()


@pytest.mark.parametrize(
    ("user", "password"),
    [("", "wrong"), ("alice", "wrong"), ("nobody", "s3cret"), ("", "")],
    ids=["wrong-password", "wrong-user-password", "unknown-user", "no-credentials"],
)
async def test_wrong_credentials_give_a_clear_error(
    auth_server: RedisServer, user: str, password: str
) -> None:
    """Bad or missing credentials raise MemoryBackendError saying authentication failed."""
    url = auth_server.url_with(user, password) if user or password else auth_server.url
    memory = MemoryPrimitive(redis_url=url, fallback=False, namespace="auth")
    with pytest.raises(MemoryBackendError, match="authentication failed"):
        await memory.add("k", "v")
    await memory.aclose()


async def test_user_without_script_permission_is_told_so(auth_server: RedisServer) -> None:
    """An ACL user that may not run scripts gets a permission error naming what is missing."""
    memory = MemoryPrimitive(
        redis_url=auth_server.url_with("reader", "pages"), fallback=False, namespace="auth"
    )
    with pytest.raises(MemoryBackendError, match="permission denied"):
        await memory.add("k", "v")
    await memory.aclose()


async def test_wrong_credentials_with_fallback_degrade_with_a_warning(
    auth_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """With the default fallback, bad credentials mean memory keeps working, degraded."""
    memory = MemoryPrimitive(redis_url=auth_server.url_with("alice", "nope"), namespace="auth")
    with caplog.at_level(logging.WARNING, logger="tta_dev_primitives"):
        await memory.add("k", "v")
        assert await memory.get("k") == "v"
    assert not memory.is_using_redis()
    assert memory.get_backend_info()["degraded"] is True
    assert "authentication failed" in caplog.text
    await memory.aclose()


# -- TLS ----------------------------------------------------------------------------------------


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (and its key), made with the openssl CLI."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("no openssl command to make a test certificate")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_tls_with_a_self_signed_certificate(flavour: str, tmp_path: Path) -> None:
    """rediss:// with the CA works; without trusting it, a clear MemoryBackendError."""
    cert, key = make_certificate(tmp_path)
    args = [
        "--tls-cert-file",
        str(cert),
        "--tls-key-file",
        str(key),
        "--tls-ca-cert-file",
        str(cert),
        "--tls-auth-clients",
        "no",
    ]
    try:
        context = running_server(flavour, args, tls=True)
        server = context.__enter__()
    except RuntimeError as exc:
        pytest.skip(f"{flavour} server binary without TLS support: {exc}")
    try:
        trusted = RedisBackend.from_url(server.url, ssl_ca_certs=str(cert))
        try:
            await trusted.ping()
        except MemoryBackendError as exc:
            if "SSL" not in str(exc) and "ssl" not in str(exc):
                pytest.skip(f"{flavour} server binary does not speak TLS: {exc}")
            raise
        memory = MemoryPrimitive(backend=trusted, namespace="tls")
        await memory.add("k", "over tls")
        assert await memory.get("k") == "over tls"
        assert [h.key for h in await memory.search("tls")] == ["k"]
        untrusted = RedisBackend.from_url(server.url, retries=0)
        with pytest.raises(MemoryBackendError, match=r"(?i)certificate|ssl"):
            await untrusted.ping()
        await untrusted.aclose()
        await trusted.aclose()
    finally:
        context.__exit__(None, None, None)
