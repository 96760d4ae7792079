"""Packaging: public exports, typing marker, import without the OpenTelemetry SDK."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import textwrap
from pathlib import Path

import tta_dev_primitives

from tests.support.paths import ROOT
from tests.support.subproc import run_code

# Modules whose names are deliberately reached through their own module path.
NOT_REEXPORTED = (
    "tta_dev_primitives.testing",
    "tta_dev_primitives.observability",
    "tta_dev_primitives.core.telemetry",
    # Plumbing for backend authors: tta_dev_primitives.memory.backends / .search / .index.
    "tta_dev_primitives.memory.backends.base",
    "tta_dev_primitives.memory.backends.redis_clients",
    "tta_dev_primitives.memory.backends.redis_cluster",
    "tta_dev_primitives.memory.backends.redis_index",
    "tta_dev_primitives.memory.backends.redis_query_engine",
    "tta_dev_primitives.memory.backends.redis.",  # the Redis backend's parts
    "tta_dev_primitives.memory.codec",
    "tta_dev_primitives.memory.index",
    "tta_dev_primitives.memory.query_cache",
    "tta_dev_primitives.memory.records",
    "tta_dev_primitives.memory.instrumentation",
    "tta_dev_primitives.memory.search",
    "tta_dev_primitives.memory.tree",
    "tta_dev_primitives.memory.rerank",
    # The primitive's parts (operations, runtime, writer, handlers, steps, export, import).
    "tta_dev_primitives.memory.operations",
    "tta_dev_primitives.memory.runtime",
    "tta_dev_primitives.memory.writes",
    "tta_dev_primitives.memory.handlers",
    "tta_dev_primitives.memory.steps",
    "tta_dev_primitives.memory.cursor",
    "tta_dev_primitives.memory.exporting",
    "tta_dev_primitives.memory.importing",
    "tta_dev_primitives.memory.compacting",
    "tta_dev_primitives.cli",
    # Integrations (extras, imported on use): tta_dev_primitives.integrations.<name>.
    "tta_dev_primitives.integrations",
)


def _public_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(tta_dev_primitives.__path__, "tta_dev_primitives."):
        if any(part.startswith("_") for part in info.name.split(".")):
            continue
        names.append(info.name)
    return names


def test_every_public_module_has_all() -> None:
    """Each public module declares __all__, and every name in it exists."""
    for name in _public_modules():
        module = importlib.import_module(name)
        assert hasattr(module, "__all__"), f"{name} has no __all__"
        for exported in module.__all__:
            assert hasattr(module, exported), f"{name}.__all__ lists missing {exported}"


def test_top_level_exports_every_public_class_and_function() -> None:
    """The top-level __all__ lists every public class/function of the public subpackages."""
    exported = set(tta_dev_primitives.__all__)
    for name in _public_modules():
        if name.startswith(NOT_REEXPORTED):
            continue
        module = importlib.import_module(name)
        for item in module.__all__:
            obj = getattr(module, item)
            origin = getattr(obj, "__module__", "")
            ours = origin.startswith("tta_dev_primitives") and not origin.startswith(NOT_REEXPORTED)
            if (inspect.isclass(obj) or inspect.isfunction(obj)) and ours:
                assert item in exported, f"{name}.{item} is not exported at top level"
    for item in tta_dev_primitives.__all__:
        assert hasattr(tta_dev_primitives, item)


def test_py_typed_marker_ships() -> None:
    """The package carries py.typed for type checkers."""
    assert (Path(tta_dev_primitives.__file__).parent / "py.typed").exists()


def test_imports_and_runs_without_sdk() -> None:
    """A fresh interpreter that cannot import opentelemetry.sdk still imports and runs us."""
    code = textwrap.dedent(
        """
        import sys, asyncio
        class Block:
            def find_spec(self, name, path=None, target=None):
                if name == "opentelemetry.sdk" or name.startswith("opentelemetry.sdk."):
                    raise ImportError("blocked: " + name)
                return None
        sys.meta_path.insert(0, Block())
        import tta_dev_primitives as t
        from tta_dev_primitives import LambdaPrimitive
        p = LambdaPrimitive(lambda x, c: x + 1) >> LambdaPrimitive(lambda x, c: x * 2)
        print(asyncio.run(p.execute(1)))
        assert not any(m.startswith("opentelemetry.sdk") for m in sys.modules)
        try:
            with __import__("tta_dev_primitives.testing").testing.capture_telemetry():
                pass
        except ImportError as exc:
            assert "otel" in str(exc), exc
            print("sdk-missing-ok")
        """
    )
    assert run_code(code).split() == ["4", "sdk-missing-ok"]


def test_zero_setup_path_never_imports_redis() -> None:
    """MemoryPrimitive() with no URL runs a search without importing redis or the Lua scripts."""
    code = textwrap.dedent(
        """
        import sys, asyncio
        from tta_dev_primitives import MemoryPrimitive

        async def main():
            memory = MemoryPrimitive()
            await memory.add("k", "hello world")
            return await memory.search("hello")

        print(len(asyncio.run(main())))
        loaded = sorted(m for m in sys.modules if m == "redis" or m.startswith("redis."))
        assert not loaded, loaded
        assert "tta_dev_primitives.memory.backends.redis" not in sys.modules
        from tta_dev_primitives import RedisBackend
        print(RedisBackend.__name__)
        """
    )
    assert run_code(code).split() == ["1", "RedisBackend"]


def test_version_is_past_the_first_release_and_matches_the_project() -> None:
    """__version__ is pyproject's version, and newer than 0.1.0 (whose Redis layout the docs
    call 'the 0.1.0 layout')."""
    import tomllib

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert tta_dev_primitives.__version__ == declared
    release = tuple(int(part) for part in declared.split(".")[:3] if part.isdigit())
    assert release > (0, 1, 0)
