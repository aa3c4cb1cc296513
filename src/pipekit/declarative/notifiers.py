"""``on_failure`` / ``on_success`` / ``on_retry`` entries of DAG files: the built-in notifiers.

An entry is ``webhook: {url, headers, timeout}`` or ``email: {host, port, sender, to,
...}``, the options of :class:`pipekit.notify.Webhook` and :class:`pipekit.notify.Email`.
``${VAR}`` in an option reads an environment variable each time the notifier fires,
so a webhook secret or SMTP password stays out of the file, and a file can be loaded
(and checked by ``pipekit validate``) where the secrets are not set.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pipekit.callbacks import Event
from pipekit.declarative import substitute
from pipekit.errors import DefinitionError

__all__ = ["FileNotifier", "check"]


def _expand(value: Any, environ: Mapping[str, str], what: str) -> Any:
    if isinstance(value, str):
        return substitute.expand_env(value, environ, what)
    if isinstance(value, list):
        return [_expand(v, environ, what) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v, environ, what) for k, v in value.items()}
    return value


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    return []


def _build(kind: str, options: Mapping[str, Any]) -> Any:
    from pipekit.notify import Email, Webhook

    opts = dict(options)
    if kind == "webhook":
        url = opts.pop("url")
        return Webhook(url, **opts)
    port = opts.pop("port")
    if isinstance(port, str) and port.strip().isdigit():
        port = int(port)
    return Email(opts.pop("host"), port, opts.pop("sender"), opts.pop("to"), **opts)


class FileNotifier:
    """A notifier from a DAG file, built from its options (``${VAR}`` read) when it fires.

    Args:
        kind: "webhook" or "email".
        options: the options as written.
        origin: where it is written (``flows/x.yml:7``), for messages.
    """

    def __init__(self, kind: str, options: Mapping[str, Any], origin: str) -> None:
        self.kind = kind
        self.options = dict(options)
        self.origin = origin
        self.__name__ = kind

    def __repr__(self) -> str:
        """Kind and origin only: options may hold secrets."""
        return f"FileNotifier({self.kind} at {self.origin})"

    def build(self, environ: Mapping[str, str] | None = None) -> Any:
        """The :class:`pipekit.notify.Webhook` or ``Email`` with variables read now.

        Raises:
            PipekitError: a variable is not set, or an option is invalid once read.
        """
        what = f"the {self.kind} notifier at {self.origin}"
        opts = _expand(self.options, os.environ if environ is None else environ, what)
        return _build(self.kind, opts)

    def __call__(self, event: Event) -> None:
        """Deliver ``event``."""
        self.build()(event)


def check(kind: str, options: Mapping[str, Any]) -> str | None:
    """What is wrong with a notifier's options, or None.

    ``${VAR}`` references are checked for form only; options without any are checked
    by building the notifier.
    """
    texts = _strings(options)
    try:
        found = [r for t in texts for r in substitute.refs(t, fallbacks=True)]
    except ValueError as exc:
        return str(exc)
    if found:
        return None
    try:
        _build(kind, options)
    except KeyError:
        return None  # a required option is missing: the schema says which
    except (DefinitionError, TypeError, ValueError) as exc:
        return str(exc)
    return None
