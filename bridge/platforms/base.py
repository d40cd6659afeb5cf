"""What a platform module provides. Nothing outside a platform module knows its field names."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Protocol

from bridge.config import ShopConfig
from bridge.events import CanonicalEvent
from bridge.privacy import Privacy


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

    name: ClassVar[str]

    def verify(self, delivery: Delivery, now: float) -> None:
        """Raise VerificationFailed unless the delivery is authentic. ``now`` is a Unix time."""

    def event_name(self, delivery: Delivery) -> str:
        """The platform's event name (``orders/paid``, ``variant.update``); raise UnknownEvent."""

    def normalise(
        self, delivery: Delivery, event: str, payload: Any, privacy: Privacy
    ) -> CanonicalEvent:
        """The canonical event for a verified, parsed delivery; raise InvalidPayload."""


@dataclass(frozen=True, slots=True)
class StockTarget:
    """Where a set-stock write goes: a variant, or a Cyberbiz inventory sync group."""

    variant: str | None = None
    product: str | None = None
    cyberbiz_group: str | None = None


class PlatformClient(Protocol):
    """One shop's write API. Implementations raise PlatformError (retryable or not)."""

    async def set_stock(self, target: StockTarget, quantity: int, idempotency_key: str) -> None: ...

    async def aclose(self) -> None: ...
