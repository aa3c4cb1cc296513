"""Built-in notifiers: post to a chat webhook, or send an email.

Both are callables taking a :class:`pipekit.Event`, so they go wherever a callback
goes: ``@task(on_failure=Webhook(url))``, ``@dag(on_failure=[Webhook(url), Email(...)])``.
They raise on delivery failure; pipekit logs that and carries on (a notifier never
changes a run's outcome).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

from pipekit.callbacks import Event
from pipekit.errors import DefinitionError, PipekitError

__all__ = ["Email", "Webhook", "payload"]


def payload(event: Event) -> dict[str, Any]:
    """The JSON a :class:`Webhook` posts: ``text`` (what Slack and chat tools show), and fields."""
    return {
        "text": event.text,
        "kind": event.kind,
        "dag": event.dag,
        "run_id": event.run_id,
        "task": event.task,
        "params": dict(event.params),
        "attempt": event.attempt,
        "state": event.state,
        "error": event.error,
        "failed_tasks": list(event.failed_tasks),
    }


class Webhook:
    """POST a JSON message to ``url`` for each event.

    Args:
        url: the endpoint (a Slack incoming webhook, a Mattermost/Teams/Discord-style
            hook, or your own service).
        headers: extra HTTP headers (an ``Authorization`` token, say).
        timeout: seconds to wait for the server.

    Example:
        >>> @dag(on_failure=Webhook("https://hooks.slack.com/services/..."))
        ... def etl(ds): ...
    """

    def __init__(
        self, url: str, *, headers: Mapping[str, str] | None = None, timeout: float = 10.0
    ) -> None:
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise DefinitionError(f"Webhook(url={url!r}): give an http:// or https:// URL")
        self.url = url
        self.headers = dict(headers or {})
        self.timeout = timeout
        self.__name__ = "Webhook"

    def __repr__(self) -> str:
        """Show the host only: webhook URLs often embed a secret."""
        from urllib.parse import urlsplit

        parts = urlsplit(self.url)
        host = parts.hostname or "?"
        return f"Webhook({host if parts.port is None else f'{host}:{parts.port}'!r})"

    def __call__(self, event: Event) -> None:
        """Post the event; raise PipekitError if the server does not answer 2xx."""
        body = json.dumps(payload(event)).encode()
        request = urllib.request.Request(
            self.url,
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", **self.headers},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status = response.status
        except urllib.error.HTTPError as exc:  # the error is the open response: close it
            exc.close()
            raise PipekitError(f"webhook {self!r} answered HTTP {exc.code}") from None
        except OSError as exc:
            raise PipekitError(f"webhook {self!r} failed: {exc}") from exc
        if not 200 <= status < 300:  # 1xx/3xx that urllib did not follow
            raise PipekitError(f"webhook {self!r} answered HTTP {status}")


class Email:
    """Send a plain-text email for each event through an SMTP server.

    Args:
        host: the SMTP server.
        port: its port (25, 587 for STARTTLS, ...).
        sender: the From address.
        to: one recipient or a list of them.
        starttls: upgrade the connection with STARTTLS before sending.
        username: log in with this user (and ``password``) before sending.
        password: the password for ``username``.
        timeout: seconds to wait for the server.
        subject_prefix: put before every subject.
    """

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        to: str | Sequence[str],
        *,
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        subject_prefix: str = "[pipekit]",
    ) -> None:
        recipients = [to] if isinstance(to, str) else list(to)
        if not recipients or not all(isinstance(r, str) and "@" in r for r in recipients):
            raise DefinitionError(f"Email(to={to!r}): give one or more email addresses")
        if not isinstance(sender, str) or "@" not in sender:
            raise DefinitionError(f"Email(sender={sender!r}): give an email address")
        self.host = host
        self.port = port
        self.sender = sender
        self.to = recipients
        self.starttls = starttls
        self.username = username
        self.password = password
        self.timeout = timeout
        self.subject_prefix = subject_prefix
        self.__name__ = "Email"

    def __repr__(self) -> str:
        """Server and recipients, never the password."""
        return f"Email({self.host}:{self.port} -> {', '.join(self.to)})"

    def subject(self, event: Event) -> str:
        """One line: what happened to which DAG (and task)."""
        what = {"failure": "FAILED", "success": "succeeded", "retry": "retrying"}.get(
            event.kind, event.state
        )
        if event.kind == "backfill":
            return f"{self.subject_prefix} backfill of {event.dag} {event.state}"
        where = f"{event.dag}.{event.task}" if event.task else event.dag
        return f"{self.subject_prefix} {where} {what}"

    def __call__(self, event: Event) -> None:
        """Send the event as an email; raise PipekitError if the server refuses it."""
        import smtplib
        from email.message import EmailMessage

        message = EmailMessage()
        message["From"] = self.sender
        message["To"] = ", ".join(self.to)
        message["Subject"] = self.subject(event)
        message.set_content(event.text + "\n")
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout) as smtp:
                if self.starttls:
                    smtp.starttls()
                if self.username is not None:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as exc:
            raise PipekitError(f"email {self!r} failed: {exc}") from exc
