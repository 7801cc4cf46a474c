"""Retry delays: exponential growth with jitter."""

from __future__ import annotations

import dataclasses
import random

__all__ = ["RetryPolicy"]


@dataclasses.dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """How long to wait before delivering a failed message again.

    The delay after the n-th failed delivery is ``initial_delay *
    multiplier ** (n - 1)``, capped at ``max_delay``, then moved by a random
    fraction of up to ``jitter`` either way so that consumers that failed
    together do not retry together. Durations are in seconds.
    """

    initial_delay: float = 1.0
    multiplier: float = 2.0
    max_delay: float = 300.0
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if self.initial_delay < 0:
            raise ValueError(f"initial_delay must be 0 or more seconds, got {self.initial_delay}")
        if self.multiplier < 1:
            raise ValueError(f"multiplier must be 1 or more, got {self.multiplier}")
        if self.max_delay < self.initial_delay:
            raise ValueError(
                f"max_delay ({self.max_delay}) must be at least initial_delay ({self.initial_delay})"
            )
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be a fraction between 0 and 1, got {self.jitter}")

    def delay(self, failed_deliveries: int) -> float:
        """Return the delay in seconds after ``failed_deliveries`` failed deliveries (1 or more)."""
        exponent = max(failed_deliveries, 1) - 1
        try:
            base = self.initial_delay * self.multiplier**exponent
        except OverflowError:
            base = self.max_delay
        base = min(base, self.max_delay)

        spread = base * self.jitter
        return max(0.0, min(self.max_delay, base + random.uniform(-spread, spread)))
