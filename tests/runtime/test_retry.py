"""Retry policy delays."""

from __future__ import annotations

import pytest

from iris_transport.runtime import RetryPolicy


def test_delay_grows_exponentially_without_jitter():
    policy = RetryPolicy(initial_delay=1, multiplier=2, max_delay=10, jitter=0)

    assert [policy.delay(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_delay_jitter_stays_within_bounds():
    policy = RetryPolicy(initial_delay=10, multiplier=2, max_delay=100, jitter=0.2)
    delays = [policy.delay(1) for _ in range(500)]

    assert min(delays) >= 8
    assert max(delays) <= 12
    assert len(set(delays)) > 1


def test_delay_capped_for_huge_attempt_counts():
    policy = RetryPolicy(initial_delay=1, multiplier=10, max_delay=60, jitter=0.5)

    assert policy.delay(10_000) <= 60


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"initial_delay": -1}, "initial_delay must be 0 or more"),
        ({"multiplier": 0.5}, "multiplier must be 1 or more"),
        ({"initial_delay": 10, "max_delay": 5}, "max_delay"),
        ({"jitter": 1.5}, "jitter must be a fraction"),
    ],
)
def test_policy_rejects_invalid_options(options, message):
    with pytest.raises(ValueError, match=message):
        RetryPolicy(**options)
