"""Progress for long loops (collect, status, plot, one-time dataset preprocessing): a tqdm
bar on a terminal, a plain line now and then otherwise.

``progress(items, "collect")`` yields the items unchanged. On a terminal (stderr is a TTY)
and with tqdm installed it draws a bar; otherwise it prints ``collect: N done (R/s)`` to
stderr at most every ``every_s`` seconds, so logs and pipes stay readable. ``IMIX_PROGRESS=0``
turns both off.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def enabled() -> bool:
    return os.environ.get("IMIX_PROGRESS", "1") != "0"


def progress(
    items: Iterable[T],
    desc: str,
    *,
    total: int | None = None,
    unit: str = "it",
    every_s: float = 10.0,
) -> Iterator[T]:
    if not enabled():
        yield from items
        return
    if sys.stderr.isatty():
        try:
            from tqdm import tqdm
        except ImportError:
            pass
        else:
            yield from tqdm(items, desc=desc, total=total, unit=unit, leave=False)
            return
    t0 = last = time.monotonic()
    n = 0
    for n, it in enumerate(items, 1):
        yield it
        now = time.monotonic()
        if now - last >= every_s:
            last = now
            of = f"/{total}" if total else ""
            print(f"{desc}: {n}{of} {unit} ({n / (now - t0):.0f}/s)", file=sys.stderr, flush=True)
