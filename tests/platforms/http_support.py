"""HTTP doubles for the platform API client tests: a recording MockTransport and a clock."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from bridge.errors import PlatformError

NOW = 1_720_684_800.0


class Recorder:
    """A MockTransport handler that records requests and answers from a queue."""

    def __init__(self, *responses: httpx.Response | Exception) -> None:
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.responses.pop(0) if len(self.responses) > 1 else self.responses[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self))


class Clock:
    def __init__(self, now: float = NOW) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, content=orjson.dumps(body), headers=headers)


async def failure(call: Any) -> PlatformError:
    with pytest.raises(PlatformError) as info:
        await call
    return info.value
