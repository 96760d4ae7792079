"""Facts that change: history, as-of reads and supersession (no server, no model).

Run: python examples/facts_that_change.py
"""

from __future__ import annotations

import asyncio

from tta_dev_primitives import MemoryPrimitive


async def main() -> None:
    async with MemoryPrimitive(namespace="ada", history=10) as memory:
        await memory.add("diet", "I'm vegetarian", metadata={"topic": "diet"})
        await asyncio.sleep(0.01)  # a month, in a real agent
        await memory.add("diet", "I'm vegan now", metadata={"topic": "diet"})

        # Default reads see the current fact only: the stale one never surfaces.
        print(f"now: {await memory.get('diet')}")
        print(f"search 'vegetarian': {await memory.search('vegetarian')}")

        # The history, newest first, each version with when it was current.
        versions = await memory.history("diet")
        for v in versions:
            print(f"  {v.value!r:20} valid_to={'(current)' if v.valid_to is None else 'set'}")

        # What the agent believed back then.
        old = versions[1]
        assert old.valid_from is not None
        assert old.valid_to is not None
        then = (old.valid_from + old.valid_to) / 2
        print(f"as of then: {await memory.get('diet', as_of=then)}")
        hits = await memory.search("vegetarian", as_of=then)
        print(f"search 'vegetarian' as of then: {[h.value for h in hits]}")

        # A new key can end other records too, in the same atomic step.
        await memory.add("allergy:1", "allergic to peanuts")
        await memory.add("allergy:2", "allergic to peanuts and tree nuts", supersedes=["allergy:1"])
        print(f"allergy:1 now: {await memory.get('allergy:1')}")
        print(f"allergy:1 history: {[v.value for v in await memory.history('allergy:1')]}")


if __name__ == "__main__":
    asyncio.run(main())
