"""bridge.http_body: one body reader with a size limit (ingress and simulator)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from starlette.requests import ClientDisconnect

from bridge.http_body import BodyTooLarge, read_body


def receiver(*messages: dict[str, Any]) -> Callable[[], Awaitable[dict[str, Any]]]:
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    return receive


def chunk(body: bytes, more: bool) -> dict[str, Any]:
    return {"type": "http.request", "body": body, "more_body": more}


async def test_joins_the_chunks_up_to_the_limit() -> None:
    """A body of exactly the limit is read whole."""
    receive = receiver(chunk(b"abc", True), chunk(b"de", False))
    assert b"abcde" == await read_body(receive, 5)


async def test_refuses_a_declared_length_before_reading() -> None:
    """A Content-Length over the limit is refused without reading anything."""
    with pytest.raises(BodyTooLarge) as info:
        await read_body(receiver(), 5, declared=6)
    assert (5, 6) == (info.value.limit, info.value.declared)


async def test_stops_reading_once_the_body_grows_past_the_limit() -> None:
    """Without a declared length, the chunk that crosses the limit ends the read."""
    receive = receiver(chunk(b"abc", True), chunk(b"def", True), chunk(b"never", False))
    with pytest.raises(BodyTooLarge) as info:
        await read_body(receive, 5)
    assert (5, None) == (info.value.limit, info.value.declared)


async def test_a_disconnect_before_the_end_is_reported() -> None:
    """http.disconnect mid-body raises ClientDisconnect."""
    with pytest.raises(ClientDisconnect):
        await read_body(receiver(chunk(b"ab", True), {"type": "http.disconnect"}), 5)
