"""format_error: the text of a failed attempt, whatever the exception does."""

from __future__ import annotations

import traceback

import pytest

from pipekit.executors.base import error_head, format_error

from .pipelines import Unprintable


def _raised(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as caught:
        return caught


def test_an_error_whose_str_raises_is_worded_as_traceback_words_it() -> None:
    """The message becomes "<exception str() failed>"; the traceback is still there."""
    text = format_error(_raised(Unprintable("hidden")))
    assert text.startswith("Unprintable: <exception str() failed>\n\n")
    assert "Traceback (most recent call last)" in text
    assert error_head(Unprintable("x")) == "Unprintable: <exception str() failed>"


def test_a_traceback_that_cannot_be_formatted_leaves_a_note(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Should formatting the traceback itself fail, the text says so instead of raising."""

    def broken(*args: object, **kwargs: object) -> list[str]:
        raise RecursionError("too deep")

    monkeypatch.setattr(traceback, "format_exception", broken)
    text = format_error(_raised(ValueError("plain")))
    assert text == (
        "ValueError: plain\n\n(the traceback could not be formatted: RecursionError: too deep)"
    )
