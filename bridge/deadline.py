"""A cheap deadline for one await chain: the current task is cancelled when it passes.

What ``asyncio.timeout`` does, without its state machine: one timer handle. It counts on the
ingress's path once or twice per webhook (reading the body, waiting for the broker's ack), where
``asyncio.timeout`` plus ``asyncio.shield`` cost several microseconds each.

    deadline = Deadline(seconds)
    try:
        await work()
    except asyncio.CancelledError:
        if not deadline.absorb():
            raise  # cancelled from outside (shutdown): not a timeout
        ...  # the deadline passed
    finally:
        deadline.disarm()
"""

from __future__ import annotations

import asyncio


class Deadline:
    """Cancels the current task ``seconds`` from now unless disarmed first."""

    __slots__ = ("_handle", "_task", "expired")

    def __init__(self, seconds: float) -> None:
        task = asyncio.current_task()
        if task is None:
            raise RuntimeError("a Deadline needs a running asyncio task")
        self._task = task
        self.expired = False
        self._handle = asyncio.get_running_loop().call_later(seconds, self._expire)

    def _expire(self) -> None:
        self.expired = True
        self._task.cancel()

    def absorb(self) -> bool:
        """After a CancelledError: whether this deadline alone caused it (then it is undone)."""
        return self.expired and self._task.uncancel() == 0

    def disarm(self) -> None:
        self._handle.cancel()
