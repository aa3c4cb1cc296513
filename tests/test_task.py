"""@task: both decorator forms, options, validation, and plain calls outside a DAG."""

from __future__ import annotations

import pytest

import pipekit
from pipekit import Retry, task


def test_bare_decorator_keeps_the_function_callable_as_is() -> None:
    """Outside a DAG body a task is the plain function, so it can be unit-tested."""

    @task
    def double(x: int) -> int:
        return x * 2

    assert double(21) == 42
    assert double.name == "double"
    assert double.retry.attempts == 1


def test_decorator_with_options_builds_the_retry_policy() -> None:
    """retries=2 means up to three attempts, with the given delays."""

    @task(retries=2, retry_delay=0.5, retry_backoff=2, retry_max_delay=0.75, name="t")
    def f() -> None:
        return None

    assert f.name == "t"
    assert f.retry == Retry(attempts=3, delay=0.5, backoff=2, max_delay=0.75)
    assert f.retry.delays() == [0.5, 0.75]


def test_retry_object_is_accepted_and_exclusive_with_options() -> None:
    """retry=Retry(...) is an alternative to the retry_* options, not a complement."""
    policy = Retry(attempts=4, delay=1, on=(ConnectionError,))

    @task(retry=policy)
    def f() -> None:
        return None

    assert f.retry is policy
    with pytest.raises(pipekit.DefinitionError, match="not both"):
        task(retry=policy, retries=1)


def test_wrapper_keeps_name_and_docstring() -> None:
    """functools metadata survives decoration."""

    @task
    def documented() -> None:
        """Docs."""

    assert documented.__doc__ == "Docs."
    assert documented.__name__ == "documented"


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"retries": -1}, "retries=-1"),
        ({"retries": 1.5}, "retries=1.5"),
        ({"retry_delay": -2}, "retry_delay=-2"),
        ({"retry_backoff": 0.5}, "retry_backoff=0.5"),
        ({"retry_on": "ValueError"}, "'ValueError'"),
        ({"timeout": 0}, "timeout=0"),
        ({"timeout": float("nan")}, "timeout=nan"),
        ({"name": ""}, "name=''"),
    ],
)
def test_bad_options_name_the_value(options: dict[str, object], fragment: str) -> None:
    """Each invalid option raises a DefinitionError quoting the bad value."""
    with pytest.raises(pipekit.DefinitionError) as info:
        task(**options)(lambda: None)  # type: ignore[call-overload]
    assert fragment in str(info.value)
    assert isinstance(info.value, pipekit.PipekitError)


def test_retry_attempts_must_count_the_first() -> None:
    """Retry(attempts=0) is refused with a hint."""
    with pytest.raises(pipekit.DefinitionError, match="attempts=0"):
        Retry(attempts=0)


def test_single_exception_type_is_normalised_to_a_tuple() -> None:
    """retry_on=KeyError is stored as (KeyError,)."""
    assert Retry(attempts=2, on=KeyError).on == (KeyError,)  # type: ignore[arg-type]


def test_next_delay_follows_backoff_cap_and_jitter() -> None:
    """The tenacity-backed policy returns the delays it documents, then None."""
    policy = Retry(attempts=4, delay=1, backoff=3, max_delay=5)
    err = ValueError("x")
    assert [policy.next_delay(n, err) for n in (1, 2, 3, 4)] == [1.0, 3.0, 5.0, None]
    jittery = Retry(attempts=3, delay=1, jitter=0.5)
    delays = [jittery.next_delay(1, err) for _ in range(50)]
    assert all(d is not None and 1.0 <= d <= 1.5 for d in delays)
    assert len(set(delays)) > 1


def test_next_delay_refuses_unlisted_exceptions() -> None:
    """An error outside retry_on is not retried even with attempts left."""
    policy = Retry(attempts=3, on=(ConnectionError,))
    assert policy.next_delay(1, PermissionError("denied")) is None
    assert policy.next_delay(1, ConnectionError("down")) == 0.0


def test_task_applied_twice_is_refused() -> None:
    """@task on a task is a mistake, reported as such."""

    @task
    def f() -> None:
        return None

    with pytest.raises(pipekit.DefinitionError, match="already a task"):
        task(f)


def _plus(a: int, b: int) -> int:
    return a + b


def test_a_partial_is_named_after_its_function() -> None:
    """task(functools.partial(f, 1)) takes f's name; name= still overrides it."""
    import functools

    assert task(functools.partial(_plus, 1)).name == "_plus"
    assert task(functools.partial(functools.partial(_plus), 1))(2) == 3
    assert task(name="plus_one")(functools.partial(_plus, 1)).name == "plus_one"


def test_a_callable_without_a_name_needs_name() -> None:
    """A callable object has no __name__: DefinitionError says to pass name=."""

    class Adder:
        def __call__(self, x: int) -> int:
            return x + 1

    with pytest.raises(pipekit.DefinitionError, match=r"no __name__.*name="):
        task(Adder())
    assert task(name="adder")(Adder())(1) == 2
