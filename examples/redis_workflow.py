"""Memory in Redis, in one line, that keeps working (and loses nothing) when Redis does not.

With ``REDIS_URL`` set (``REDIS_URL=redis://localhost:6379/0 python examples/redis_workflow.py``)
the records live in that Redis or Valkey server. Without it, the example starts nothing: it
points the memory at a local port where no server listens, so you can watch the fallback:
every call still succeeds, served from memory, a warning is logged once, and the writes are
journaled for the moment Redis answers again.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket

from tta_dev_primitives import FallbackBackend, MemoryPrimitive


def unused_url() -> str:
    """A redis:// URL on a loopback port nothing listens on (we only ask the kernel for one)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


async def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="  [log] %(levelname)s %(message)s")
    url = os.environ.get("REDIS_URL")
    if url:
        print(f"REDIS_URL is set: using {url}")
    else:
        url = unused_url()
        print(f"REDIS_URL is not set: pointing at {url}, where no server listens")

    # The one line that moves memory to Redis (behind an in-memory fallback by default).
    memory = MemoryPrimitive(redis_url=url, namespace=("examples", "redis_workflow"))
    print(f"before the first call, is_using_redis() = {memory.is_using_redis()}")

    await memory.add("turn:1", {"role": "user", "text": "I deploy with Kubernetes on Fridays"})
    await memory.add("turn:2", {"role": "user", "text": "Our cache is Redis, on port 6379"})
    await memory.add("note", "Remember to rotate the Redis password", ttl=3600)

    info = memory.get_backend_info()
    print(f"after the first call:  is_using_redis() = {memory.is_using_redis()}")
    print(f"backend={info['backend']} degraded={info['degraded']} persistent={info['persistent']}")

    print("search 'redis':")
    for hit in await memory.search("redis", limit=3):
        print(f"  {hit.score:5.2f}  {hit.key}")
    print(f"get turn:1 -> {(await memory.get('turn:1'))['text']}")

    backend = memory.backend
    if isinstance(backend, FallbackBackend) and backend.degraded:
        print(
            "\nFallback in action: Redis did not answer, so every call above was served from\n"
            f"memory. {backend.pending} writes are journaled; a background probe retries Redis\n"
            f"every {backend.probe_interval:g}s and replays them, in order, when it answers\n"
            "(if the process ends first, aclose() logs how many never reached Redis).\n"
            "Start a server and set REDIS_URL to see the Redis path."
        )
    else:
        print(f"\nRecords now live in Redis under {backend.info().attributes['server.address']}")
        print(f"keys, least recently used first: {await memory.keys()}")
        await memory.clear()  # tidy up the example's namespace

    await memory.aclose()


if __name__ == "__main__":
    asyncio.run(main())
