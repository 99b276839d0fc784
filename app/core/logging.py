"""Structured logs (structlog): one JSON object a line, with the request id bound.

Every logger renders exceptions through :func:`safe_exc_info`: plain tracebacks without local
variables, and for a failed database statement without any database message (which can quote
a bound value)."""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import MutableMapping
from typing import Any

import structlog
from sqlalchemy.exc import StatementError


def _qualified(exc: BaseException) -> str:
    kind = type(exc)
    return (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what it was raised from or during, the oldest first (as Python prints)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return chain[::-1]


def safe_exception_text(exc: BaseException) -> str | None:
    """A traceback of ``exc`` without any database error message, or None when no database
    statement is involved (the plain traceback is safe then).

    The engine hides bound parameters (``hide_parameters``), but a database's own message can
    quote them (PostgreSQL: ``invalid input syntax for type integer: "..."``). For a failed
    statement this keeps the frames, the error classes, the SQLSTATE and the SQL text (with
    placeholders), and leaves out every message that can carry a value.
    """
    chain = _chain(exc)
    statements = [e for e in chain if isinstance(e, StatementError)]
    if not statements:
        return None
    withheld = {id(e.orig) for e in statements if e.orig is not None}
    parts = []
    for e in chain:
        if isinstance(e, StatementError):
            sql = " ".join(str(e.statement or "").split())
            orig = e.orig
            cause = "" if orig is None else f" ({_qualified(orig)}{_sqlstate(orig)})"
            headline = f"{_qualified(e)}:{cause} [SQL: {sql[:2000]}] [message withheld]"
        elif id(e) in withheld:
            headline = f"{_qualified(e)}{_sqlstate(e)}: [message withheld]"
        else:
            headline = traceback.format_exception_only(type(e), e)[-1].rstrip("\n")
        frames = "".join(traceback.format_tb(e.__traceback__))
        parts.append(f"Traceback (most recent call last):\n{frames}{headline}")
    return "\n\nwhich led to:\n\n".join(parts)


def _sqlstate(exc: BaseException) -> str:
    code = getattr(exc, "sqlstate", None) or getattr(exc, "sqlite_errorname", None)
    return f" [{code}]" if isinstance(code, str) else ""


def safe_exc_info(
    _logger: Any, _name: str, event: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """A structlog processor: an exception that involves a database statement is rendered by
    :func:`safe_exception_text`; every other one is left to ``format_exc_info``."""
    info = event.get("exc_info")
    if not info:
        return event
    if info is True:
        info = sys.exc_info()
    exc = info if isinstance(info, BaseException) else info[1] if isinstance(info, tuple) else None
    text = safe_exception_text(exc) if exc is not None else None
    if text is not None:
        event.pop("exc_info", None)
        event["exception"] = text
    return event


def configure_logging(level: str = "INFO", *, json: bool = True) -> None:
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
    )
    structlog.configure(
        # Tracebacks are rendered plain, never with local variables (they may hold secrets).
        processors=[*shared, safe_exc_info, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
