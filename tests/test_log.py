"""Log redaction: no secret, token or customer PII reaches a log line."""

from __future__ import annotations

import datetime as dt
import io
import logging
import re

import orjson
import structlog

from bridge import log


def render(**fields: object) -> dict[str, object]:
    stream = io.StringIO()
    log.configure("debug", "json", stream=stream)
    try:
        log.get_logger("test").info("something_happened", **fields)
    finally:
        structlog.reset_defaults()
    line = stream.getvalue().strip()
    value = orjson.loads(line)
    assert isinstance(value, dict)
    return value


def test_sensitive_keys_are_redacted_at_any_depth() -> None:
    """Tokens, secrets and PII keys are blanked, nested ones too; other fields stay."""
    out = render(
        shop="cb-taipei",
        api_token="tok-123",
        headers={"Authorization": "Bearer abc", "x-cyberbiz-event": "orders/paid"},
        order={"customer": {"email": "a@b.c"}, "id": 7},
    )
    assert "cb-taipei" == out["shop"]
    assert "[redacted]" == out["api_token"]
    assert {"Authorization": "[redacted]", "x-cyberbiz-event": "orders/paid"} == out["headers"]
    assert {"customer": "[redacted]", "id": 7} == out["order"]


def test_tokens_in_urls_are_redacted() -> None:
    """A BentoWeb ?token= in a logged URL does not leak."""
    out = render(url="http://x/webhooks/bento-bkk/order.paid?token=s3cret&a=1")
    assert "http://x/webhooks/bento-bkk/order.paid?token=[redacted]&a=1" == out["url"]


def test_json_lines_carry_level_timestamp_and_context() -> None:
    """Production lines are JSON with level, UTC timestamp and bound context."""
    structlog.contextvars.bind_contextvars(event_id="e-1")
    try:
        out = render(topic="commerce.orders", partition=2, offset=9)
    finally:
        structlog.contextvars.clear_contextvars()
    assert ("info", "something_happened", "e-1") == (out["level"], out["event"], out["event_id"])
    assert str(out["timestamp"]).endswith("Z")


def test_library_logs_come_out_as_redacted_json() -> None:
    """stdlib logging (aiokafka, uvicorn) is rendered as JSON lines with the same redaction."""
    import logging

    stream = io.StringIO()
    log.configure("info", "json", stream=stream)
    try:
        logging.getLogger("uvicorn.error").warning("bad %s", "thing", extra={"token": "t0k"})
        logging.getLogger("aiokafka.conn").info("reconnecting")  # below aiokafka's floor
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers = []
    lines = [orjson.loads(line) for line in stream.getvalue().splitlines()]
    assert [("warning", "bad thing", "uvicorn.error")] == [
        (line["level"], line["event"], line["logger"]) for line in lines
    ]


def test_a_logger_already_used_follows_a_later_configure() -> None:
    """A module-level logger keeps working after configure() points logging elsewhere."""
    first, second = io.StringIO(), io.StringIO()
    logger = log.get_logger("test.reused")
    try:
        log.configure("info", "json", stream=first)
        logger.info("one")
        log.configure("warning", "json", stream=second)
        logger.info("filtered_out")
        logger.warning("two")
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers = []
    events = [
        [orjson.loads(line)["event"] for line in s.getvalue().splitlines()] for s in (first, second)
    ]
    assert [["one"], ["two"]] == events


def _fail_with_a_token_url() -> None:
    raise ValueError("GET http://x/webhooks/b/order.new?token=s3cret failed")


def test_tokens_in_a_rendered_traceback_are_redacted() -> None:
    """An exception whose message quotes a URL with ?token= does not leak it in the log line."""
    stream = io.StringIO()
    log.configure("info", "json", stream=stream)
    try:
        try:
            _fail_with_a_token_url()
        except ValueError:
            log.get_logger("test").exception("request_failed")
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers = []
    exception = orjson.loads(stream.getvalue())["exception"]
    assert (False, True) == ("s3cret" in stream.getvalue(), "token=[redacted]" in exception)


def test_timestamps_are_utc_iso_with_microseconds() -> None:
    """``timestamp`` is ISO 8601 UTC with microseconds and a Z, and tells the time of the line."""
    before = dt.datetime.now(dt.UTC)
    stamp = str(render()["timestamp"])
    after = dt.datetime.now(dt.UTC)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", stamp) is not None
    moment = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    slack = dt.timedelta(milliseconds=1)  # float seconds vs datetime's rounding
    assert (True, True) == (before - slack <= moment, moment <= after + slack)


def test_a_file_stream_gets_json_bytes_in_order_with_library_lines() -> None:
    """On a real file stream (one with a binary buffer, as stderr) the bridge's lines are written
    as bytes to the buffer, library lines as text: each line whole JSON, in the order logged."""
    raw = io.BytesIO()
    stream = io.TextIOWrapper(raw, encoding="utf-8")
    log.configure("info", "json", stream=stream)
    try:
        ours = log.get_logger("test")
        ours.info("first", n=1)
        logging.getLogger("uvicorn.error").warning("second")
        ours.info("third", text="ไทย")
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers = []
    lines = [orjson.loads(line) for line in raw.getvalue().splitlines()]
    assert ["first", "second", "third"] == [line["event"] for line in lines]
    assert "ไทย" == lines[2]["text"]
