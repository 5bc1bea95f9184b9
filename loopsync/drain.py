"""The worker side of a coalesced wake-up: take work in batches until none is left."""

import time
from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def drain(
    *,
    claim: Callable[[int], Sequence[T]],
    process: Callable[[Sequence[T]], bool],
    wake: Callable[[], object],
    batch_size: int,
    budget_seconds: float,
) -> int:
    """Claim and process batches until a claim comes back empty. A full batch wakes another worker
    to share what is left; past the time budget this one hands over to a fresh task, so other work
    queued behind it gets a turn. `process` returns False to stop early (a temporary failure).
    Returns how many items were claimed."""
    started = time.monotonic()
    done = 0
    while True:
        batch = claim(batch_size)
        if not batch:
            return done
        if len(batch) == batch_size:
            wake()
        done += len(batch)
        if not process(batch):
            return done
        if time.monotonic() - started > budget_seconds:
            wake()
            return done
