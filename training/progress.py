"""Progress of long steps: a tqdm bar on a terminal, a plain line every half minute in a log file."""

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from tqdm.auto import tqdm


Item = TypeVar("Item")
LOG_INTERVAL_S = 30.0


def progress(
    items: Iterable[Item], total: int, description: str, interval_s: float = LOG_INTERVAL_S
) -> Iterator[Item]:
    """Yield `items`, showing how many of `total` are done: a bar when stderr is a terminal, else a line at most every
    `interval_s` seconds and at the end (a bar redrawn in a log file is one unreadable line)."""
    if sys.stderr.isatty():
        yield from tqdm(items, total=total, desc=description)
        return
    start = last = time.monotonic()
    for done, item in enumerate(items, start=1):
        yield item
        now = time.monotonic()
        if now - last >= interval_s or done == total:
            print(f"{description}: {done}/{total} ({now - start:.0f} s)", file=sys.stderr, flush=True)
            last = now


def announce(message: str) -> None:
    """One line saying what a long step builds and roughly how long it takes, before it starts."""
    print(message, file=sys.stderr, flush=True)


__all__ = ["announce", "progress"]
