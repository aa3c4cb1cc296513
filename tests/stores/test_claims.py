"""The claim contract: each scheduled interval goes to exactly one claimant, in every store.

Each test runs once per store kind (see the ``store`` fixture in conftest.py).
"""

from __future__ import annotations

import threading

import pytest

from pipekit.errors import StoreError
from pipekit.stores import Store

from .conftest import STORES

pytestmark = pytest.mark.parametrize("store", STORES, indirect=True)


def test_the_first_claim_wins_and_every_later_one_loses(store: Store) -> None:
    """claim() is True once per (dag, key), then False for any owner, the first included."""
    assert store.claim("etl", "2024-05-01", "scheduler-a") is True
    assert store.claim("etl", "2024-05-01", "scheduler-b") is False
    assert store.claim("etl", "2024-05-01", "scheduler-a") is False


def test_claims_of_other_intervals_and_dags_are_independent(store: Store) -> None:
    """Another key of the same DAG, or the same key of another DAG, is claimed separately."""
    assert store.claim("etl", "2024-05-01", "a")
    assert store.claim("etl", "2024-05-02", "a")
    assert store.claim("report", "2024-05-01", "b")


def test_only_the_owner_can_release_and_a_released_interval_can_be_claimed(store: Store) -> None:
    """release() by another owner changes nothing; by the owner, it frees the interval."""
    assert store.claim("etl", "k", "a")
    store.release("etl", "k", "b")
    assert not store.claim("etl", "k", "c")
    store.release("etl", "k", "a")
    assert store.claim("etl", "k", "c")
    store.release("etl", "never-claimed", "a")  # a no-op, not an error


def test_threads_racing_for_one_interval_produce_one_winner(store: Store) -> None:
    """Eight threads claiming the same intervals at once: each interval has one winner."""
    threads, keys = 8, [f"2024-05-{d:02d}" for d in range(1, 11)]
    barrier = threading.Barrier(threads)
    wins: list[tuple[str, int]] = []
    errors: list[BaseException] = []

    def race(worker: int) -> None:
        try:
            barrier.wait()
            for key in keys:
                if store.claim("etl", key, f"w{worker}"):
                    wins.append((key, worker))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    pool = [threading.Thread(target=race, args=(w,)) for w in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()

    assert errors == []
    assert sorted(key for key, _ in wins) == keys


def test_a_closed_store_refuses_claims(store: Store) -> None:
    """claim() after close() raises StoreError."""
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.claim("etl", "k", "a")
