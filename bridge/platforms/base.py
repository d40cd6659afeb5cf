"""What a platform plugin is. Nothing outside a platform's package knows its headers or fields.

A platform is one :class:`Platform` object, registered with :func:`bridge.platforms.register`:
webhook verification, event naming and normalisation (``webhooks``), the static PII paths, the
header names that carry secrets (redacted from logs), the API client factory, the target fields
it accepts, request signing (for ``commerce-bridge sign`` and the simulator), its own shop config
rules, and the event it sends after a stock change (for the simulator).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import httpx

from bridge.events import CanonicalEvent
from bridge.privacy import PiiPath, Privacy
from bridge.settings import ShopConfig
from bridge.targets import StockTarget, TargetCodec

__all__ = [
    "Delivery",
    "Platform",
    "PlatformClient",
    "SignedRequest",
    "StockTarget",
    "WebhookFunctions",
    "WebhookPlatform",
]


@dataclass(frozen=True, slots=True)
class Delivery:
    """One webhook request as ingress received it, before anything was trusted."""

    shop: ShopConfig
    body: bytes
    headers: Mapping[str, str]  # names lower-cased
    query: Mapping[str, str]
    path_event: str | None  # the `{event}` path segment, if any
    client_ip: str | None
    received_at: datetime  # timezone-aware UTC


class WebhookPlatform(Protocol):
    """Verification, event naming and normalisation of one platform's webhooks (pure, no I/O)."""

    @property
    def name(self) -> str: ...

    def verify(self, delivery: Delivery, now: float) -> None:
        """Raise VerificationFailed unless the delivery is authentic. ``now`` is a Unix time."""

    def event_name(self, delivery: Delivery) -> str:
        """The platform's event name (``orders/paid``, ``variant.update``); raise UnknownEvent."""

    def normalise(
        self, delivery: Delivery, event: str, payload: Any, privacy: Privacy
    ) -> CanonicalEvent:
        """The canonical event for a verified, parsed delivery; raise InvalidPayload."""


Verify = Callable[[Delivery, float], None]  # raises VerificationFailed
VerifyHeaders = Callable[[Delivery, float], object]  # raises VerificationFailed; result unused
CheckReplay = Callable[[Delivery, str, Any, float, float], None]
Normalise = Callable[[Delivery, str, Any, Privacy], CanonicalEvent]


@dataclass(frozen=True, slots=True)
class WebhookFunctions:
    """A :class:`WebhookPlatform` made of a platform package's module functions.

    ``verify_headers`` and ``check_replay`` are the optional checks of ``bridge.ingress.hooks``
    (``None``: the platform has none).
    """

    name: str
    verify: Verify
    event_name: Callable[[Delivery], str]
    normalise: Normalise
    verify_headers: VerifyHeaders | None = None
    check_replay: CheckReplay | None = None


class PlatformClient(Protocol):
    """One shop's API. Implementations raise PlatformError (retryable or not)."""

    async def set_stock(self, target: StockTarget, quantity: int, idempotency_key: str) -> None: ...

    async def get_stock(self, target: StockTarget) -> int:
        """The level the platform holds for ``target`` now (for reconciliation)."""
        ...

    async def aclose(self) -> None: ...


ClientFactory = Callable[[ShopConfig, httpx.AsyncClient], PlatformClient]


@dataclass(frozen=True, slots=True)
class SignedRequest:
    """A webhook as the platform would send it: ``suffix`` follows ``/webhooks/{shop}``."""

    suffix: str
    headers: dict[str, str]


# (secret, shop id, body, event, now) -> the request; ``event`` is "" when ``needs_event`` is off.
Signer = Callable[[str, str, bytes, str, float], SignedRequest]


def no_shop_rules(_shop: ShopConfig, _where: str) -> None:
    """A platform without shop rules of its own."""


def no_guess(_body: bytes) -> str | None:
    return None


@dataclass(frozen=True, slots=True)
class Platform:
    """One platform as the rest of the bridge sees it (see the module docstring)."""

    name: str  # the ``platform`` of a ``[[shops]]`` entry
    title: str  # for people: "only <title> shops have …"
    webhooks: WebhookPlatform
    client: ClientFactory
    sign: Signer
    targets: TargetCodec
    secret_headers: frozenset[str] = frozenset()  # lower-case; never logged
    pii_paths: Mapping[str, Sequence[PiiPath]] = field(default_factory=dict)  # entity -> paths
    needs_event: bool = True  # signing needs an event name (it is not in the body)
    guess_event: Callable[[bytes], str | None] = no_guess  # an event for a sample body
    stock_event: str | None = None  # the webhook the platform sends after a stock change
    check_shop: Callable[[ShopConfig, str], None] = no_shop_rules  # raise ConfigError at ``where``
