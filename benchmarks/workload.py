"""Deterministic, realistic agent-memory workload: conversation turns, metadata, queries.

Records are pure functions of ``(seed, index)``, so any size is reproducible and every system
is given byte-identical work. Conversations are grouped in sessions of ``TURNS_PER_SESSION``
turns; each session has a topic (a pool of topic words) and a few entity names (people,
places, products) that only it mentions, so the vocabulary grows with the store as real
memory does. A turn has 8-40 words mixing function words (Zipf), general words (Zipf),
topic words and the session's entities.

Queries are what an agent asks its memory when recalling a session:

* ``keyword``: a topic word and an entity of one stored session (``"ticket vorlan"``),
* ``question``: a natural-language question around them, full of common words
  (``"what did we say about the ticket for vorlan"``).
"""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass
from functools import cache
from typing import Any, NamedTuple

__all__ = [
    "Record",
    "RoundPlan",
    "TURNS_PER_SESSION",
    "Workload",
]

TURNS_PER_SESSION = 20
N_TOPICS = 40
TOPIC_WORDS = 50
GENERAL_WORDS = 3000
ENTITIES_PER_SESSION = 3
BASE_TS = 1_700_000_000

# Function words, most frequent first (they follow a Zipf law in the generated text).
FUNCTION_WORDS = (  # noqa: SIM905
    "the i to and a you it of is that in we for my on can be this with have do what "
    "so not your me are at if will just but was about there how our would like get "
    "need an or from they one when all know as up out by could should some please "
    "then also did more here which time think want make sure let any thanks yes no ok "
    "right now next last before after again maybe still"
).split()

TOPIC_NAMES = (  # noqa: SIM905
    "travel billing support coding cooking fitness finance music health shopping "
    "weather garden movies books school career housing insurance pets cars legal "
    "family events sports news gaming design marketing hiring security cloud data "
    "recipes taxes science history language art photography parenting wellness"
).split()

_SYLLABLES = (  # noqa: SIM905
    "ba be bi bo bu da de di do du fa fe fi fo ka ke ki ko ku la le li lo lu ma me mi "
    "mo mu na ne ni no nu pa pe pi po pu ra re ri ro ru sa se si so su ta te ti to tu "
    "va ve vi vo za ze zo an en in on ar er or al el il ol ex ix ox th sh ch st tr pl "
    "gr"
).split()

_QUESTIONS = (
    "what did we say about the {t} for {e}",
    "remind me what {e} said about the {t}",
    "when is the {t} with {e} and what do i need",
    "do you remember the {t} that {e} asked about",
)


class Record(NamedTuple):
    """One memory record: key, JSON value and metadata."""

    key: str
    value: dict[str, Any]
    metadata: dict[str, Any]


@dataclass(frozen=True)
class RoundPlan:
    """The work of one measured round, identical for every system.

    Attributes:
        fresh: New records for ``add`` (``delete`` removes them again in the same round).
        existing: Keys of stored records for ``get``.
        keyword_queries: Queries for ``search``.
        question_queries: Queries for ``search_question``.
        bulk: New records for one ``add_many`` call (removed after the round, untimed).
    """

    fresh: list[Record]
    existing: list[str]
    keyword_queries: list[str]
    question_queries: list[str]
    bulk: list[Record]


def _zipf_cum_weights(n: int, s: float = 1.0) -> list[float]:
    return list(itertools.accumulate(1.0 / (rank**s) for rank in range(1, n + 1)))


class Workload:
    """Generates records and round plans from a seed.

    Args:
        seed: Everything generated is a pure function of this seed.
    """

    def __init__(self, seed: int = 20240611) -> None:
        self.seed = seed
        rng = random.Random(seed)
        words: set[str] = set(FUNCTION_WORDS)
        self.general = self._pseudo_words(rng, GENERAL_WORDS, words, 2, 3)
        self.topics = {
            name: self._pseudo_words(rng, TOPIC_WORDS, words, 2, 3) for name in TOPIC_NAMES
        }
        self._fw_cum = _zipf_cum_weights(len(FUNCTION_WORDS))
        self._gw_cum = _zipf_cum_weights(len(self.general))
        self.session = cache(self._session)

    @staticmethod
    def _pseudo_words(rng: random.Random, n: int, taken: set[str], lo: int, hi: int) -> list[str]:
        out: list[str] = []
        while len(out) < n:
            word = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(lo, hi)))
            if word not in taken:
                taken.add(word)
                out.append(word)
        return out

    def _session(self, session: int) -> tuple[str, tuple[str, ...]]:
        """The topic and entity names of one session."""
        rng = random.Random(self.seed * 7_919 + session)
        topic = TOPIC_NAMES[rng.randrange(N_TOPICS)]
        entities = tuple(
            "".join(rng.choice(_SYLLABLES) for _ in range(3)) for _ in range(ENTITIES_PER_SESSION)
        )
        return topic, entities

    def record(self, index: int, prefix: str = "") -> Record:
        """Record ``index``: turn ``index % 20`` of session ``index // 20``."""
        session, turn = divmod(index, TURNS_PER_SESSION)
        topic, entities = self.session(session)
        rng = random.Random(self.seed * 1_000_003 + index)
        topic_words = self.topics[topic]
        words: list[str] = []
        for _ in range(rng.randint(8, 40)):
            roll = rng.random()
            if roll < 0.45:
                words.append(
                    FUNCTION_WORDS[bisect.bisect(self._fw_cum, rng.random() * self._fw_cum[-1])]
                )
            elif roll < 0.78:
                words.append(
                    self.general[bisect.bisect(self._gw_cum, rng.random() * self._gw_cum[-1])]
                )
            elif roll < 0.95:
                words.append(rng.choice(topic_words))
            else:
                words.append(rng.choice(entities).capitalize())
        text = " ".join(words)
        text = text[0].upper() + text[1:] + rng.choice(".?!")
        role = "user" if turn % 2 == 0 else "assistant"
        user = f"u{session % 997:03d}"
        key = f"{prefix}{user}:s{session:06d}:t{turn:02d}"
        value = {"role": role, "content": text}
        metadata = {
            "user_id": user,
            "session_id": f"s{session:06d}",
            "turn": turn,
            "topic": topic,
            "ts": BASE_TS + index * 17,
        }
        return Record(key, value, metadata)

    def records(self, start: int, stop: int, prefix: str = "") -> list[Record]:
        return [self.record(i, prefix) for i in range(start, stop)]

    def keyword_query(self, rng: random.Random, size: int) -> str:
        topic, entities = self.session(rng.randrange(max(1, size // TURNS_PER_SESSION)))
        return f"{rng.choice(self.topics[topic])} {rng.choice(entities)}"

    def question_query(self, rng: random.Random, size: int) -> str:
        topic, entities = self.session(rng.randrange(max(1, size // TURNS_PER_SESSION)))
        template = rng.choice(_QUESTIONS)
        return template.format(t=rng.choice(self.topics[topic]), e=rng.choice(entities))

    def round_plan(
        self, size: int, round_no: int, per_round: int, queries: int, bulk: int
    ) -> RoundPlan:
        """The work of round ``round_no`` on a store holding records ``0 .. size-1``."""
        rng = random.Random(f"{self.seed}:{size}:{round_no}")
        # Fresh records reuse the text of later indices under keys no stored record has.
        base = 10_000_000 + (round_no + 1) * 100_000
        fresh = self.records(base, base + per_round, prefix=f"new{round_no}:")
        bulk_base = base + 50_000
        bulk_records = self.records(bulk_base, bulk_base + bulk, prefix=f"bulk{round_no}:")
        existing = [self.record_key(rng.randrange(size)) for _ in range(per_round)]
        return RoundPlan(
            fresh=fresh,
            existing=existing,
            keyword_queries=[self.keyword_query(rng, size) for _ in range(queries)],
            question_queries=[self.question_query(rng, size) for _ in range(queries)],
            bulk=bulk_records,
        )

    @staticmethod
    def record_key(index: int) -> str:
        session, turn = divmod(index, TURNS_PER_SESSION)
        return f"u{session % 997:03d}:s{session:06d}:t{turn:02d}"
