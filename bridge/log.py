"""structlog set-up: JSON in production, console in a terminal, secrets and PII redacted."""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Iterable, MutableMapping
from typing import Any

import orjson
import structlog
from structlog._config import _CONFIG as _structlog_config  # what configure() last set

# Keys whose values never reach a log line, whatever their nesting (plus what :func:`also_redact`
# adds: the platform registry adds every registered platform's secret headers).
SENSITIVE_KEYS = frozenset(
    {
        "authorization", "api_token", "token", "access_token", "refresh_token", "secret",
        "client_secret", "webhook_secret", "webhook_secrets", "password", "sasl_password",
        "pii_key", "aes_key", "email", "phone", "mobile", "address", "customer", "buyer",
        "receiver", "body", "payload", "raw", "cookie",
    }
)  # fmt: skip
REDACTED = "[redacted]"
_TOKEN_QUERY = re.compile(r"([?&](?:token|access_token)=)[^&\s]+", re.IGNORECASE)


_extra: dict[str, frozenset[str]] = {}  # source (e.g. "platform:<name>") -> lower-case keys
_sensitive = SENSITIVE_KEYS


def also_redact(source: str, keys: Iterable[str]) -> None:
    """Redact ``keys`` as well, on behalf of ``source``; no keys forgets what ``source`` added."""
    global _sensitive
    lowered = frozenset(k.lower() for k in keys)
    if lowered:
        _extra[source] = lowered
    else:
        _extra.pop(source, None)
    _sensitive = SENSITIVE_KEYS.union(*_extra.values())


def sensitive_keys() -> frozenset[str]:
    """Every key whose value is redacted: :data:`SENSITIVE_KEYS` and what was added."""
    return _sensitive


def _scrub(value: Any, keys: frozenset[str], depth: int = 0) -> Any:
    if depth > 6:
        return REDACTED
    if isinstance(value, dict):
        return {
            k: REDACTED if str(k).lower() in keys else _scrub(v, keys, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub(v, keys, depth + 1) for v in value]
    if isinstance(value, str) and "=" in value:  # no "=", no "?token=…" to strip
        return _TOKEN_QUERY.sub(r"\1" + REDACTED, value)
    return value


def redact(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: blank out secrets/PII by key; strip tokens from URLs."""
    keys = sensitive_keys()
    for key, value in event_dict.items():  # values replaced in place: the keys stay the same
        if key.lower() in keys:
            event_dict[key] = REDACTED
        elif isinstance(value, str):
            if "=" in value:  # no "=", no "?token=…" to strip
                event_dict[key] = _TOKEN_QUERY.sub(r"\1" + REDACTED, value)
        elif isinstance(value, dict | list | tuple):
            event_dict[key] = _scrub(value, keys)
    return event_dict


class _UtcTimestamp:
    """structlog processor: ``timestamp`` as ISO 8601 UTC with microseconds and ``Z`` (what
    ``TimeStamper(fmt="iso", utc=True)`` writes), the date and time formatted once a second."""

    __slots__ = ("_prefix", "_second")

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def __call__(
        self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        now = time.time()
        second = int(now)
        if second != self._second:
            self._second = second
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        event_dict["timestamp"] = f"{self._prefix}.{int((now - second) * 1e6):06d}Z"
        return event_dict


def redact_exception(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor after ``format_exc_info``: strip tokens from the rendered traceback
    (the one field added after :func:`redact` ran)."""
    if "exception" in event_dict:
        event_dict["exception"] = _scrub(event_dict["exception"], sensitive_keys())
    return event_dict


def shared_processors() -> list[Any]:
    return [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        _UtcTimestamp(),
        redact,
    ]


def configure(level: str = "info", fmt: str = "auto", stream: Any = None) -> None:
    """Configure structlog once per process. ``fmt``: json | console | auto (console on a tty)."""
    stream = stream or sys.stderr
    if fmt == "auto":
        fmt = "console" if getattr(stream, "isatty", lambda: False)() else "json"
    renderer: Any
    output: Any = structlog.PrintLoggerFactory(file=stream)
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
        binary = getattr(stream, "buffer", None)
        if binary is not None:  # bytes straight from orjson to the file: no decode, no encode
            output = structlog.BytesLoggerFactory(file=binary)
        own_renderer = structlog.processors.JSONRenderer(
            serializer=_orjson_bytes if binary is not None else _orjson_dumps
        )
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=getattr(stream, "isatty", lambda: False)())
        own_renderer = renderer
    numeric = logging.getLevelName(level.upper())
    processors: Iterable[Any] = [
        *shared_processors(),
        structlog.processors.format_exc_info,
        redact_exception,  # the rendered traceback may quote a URL with a token
        own_renderer,
    ]
    structlog.configure(
        processors=list(processors),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=output,
        # Not cached: a later configure() (tests, `commerce-bridge dev`) must reach loggers already
        # used.
        cache_logger_on_first_use=False,
    )
    # Libraries (aiokafka, uvicorn, asyncio) log through the stdlib: same format, same redaction.
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[
                structlog.stdlib.add_logger_name,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                redact,
            ],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(numeric)
    # aiokafka narrates every reconnect at INFO; its warnings and errors are what ops need.
    logging.getLogger("aiokafka").setLevel(max(numeric, logging.WARNING))


def _orjson_dumps(obj: Any, **_kw: Any) -> str:
    return orjson.dumps(obj, default=str).decode()


def _orjson_bytes(obj: Any, **_kw: Any) -> bytes:
    return orjson.dumps(obj, default=str)


class _Logger:
    """A named structlog logger that assembles its bound logger once per configuration.

    structlog's own lazy proxy, uncached (``cache_logger_on_first_use=False``, so that a later
    :func:`configure` reaches loggers already used), builds a logger factory, a context and a
    bound logger on every call; this one rebuilds only when the configuration changed.
    """

    __slots__ = ("_bound", "_key", "_name")

    def __init__(self, name: str) -> None:
        self._name = name
        self._bound: Any = None
        self._key: tuple[Any, ...] = ()

    def __getattr__(self, attribute: str) -> Any:
        key = _configuration()
        if self._bound is None or key != self._key:
            self._bound = structlog.get_logger(self._name).bind()
            self._key = key
        return getattr(self._bound, attribute)


def _configuration() -> tuple[Any, ...]:
    """What a bound logger was assembled from (held, so compared by identity first)."""
    config = _structlog_config
    return (
        config.default_processors,
        config.logger_factory,
        config.default_wrapper_class,
        config.default_context_class,
    )


def get_logger(name: str) -> Any:
    return _Logger(name)
