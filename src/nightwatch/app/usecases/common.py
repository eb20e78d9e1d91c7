"""What every leader use case shares: the fence it checks before each write batch."""

from __future__ import annotations

from typing import Protocol


class Fence(Protocol):
    """Leadership as a use case sees it: the current fencing epoch, or LeadershipLost."""

    def epoch(self) -> int:
        """The epoch to write under. Raises LeadershipLost when the lease is not (or no longer) held."""
        ...


class FixedFence:
    """A fence that always holds one epoch: for single-process tools, tests and demos."""

    def __init__(self, epoch: int) -> None:
        self._epoch = epoch

    def epoch(self) -> int:
        return self._epoch
