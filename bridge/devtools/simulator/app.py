"""The simulator's HTTP face: Cyberbiz and BentoWeb write APIs plus ``/_sim`` inspection.

Every platform API request passes the same gate, in this order: unknown shop (404), body over the
shop's ``max_request_bytes`` (413, read streaming), bad credentials (401), rate window (429), fault
injection (429/5xx, latency), ``Idempotency-Key`` replay or conflict (422); then the handler
validates (422), applies, and the answer is logged.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive

from bridge.config import Config, ShopConfig
from bridge.devtools.simulator import _control
from bridge.devtools.simulator.faults import Faults, FaultSettings
from bridge.devtools.simulator.state import (
    SIMULATED_PLATFORMS,
    Change,
    Group,
    Platform,
    ShopState,
    SimShop,
    SimState,
    StockSeed,
    StoredAnswer,
    Variant,
    retry_after_seconds,
)
from bridge.devtools.simulator.webhooks import (
    WebhookEmitter,
    platform_id,
    taipei_time,
    variant_webhook,
)
from bridge.http_body import BodyTooLarge, read_body
from bridge.log import get_logger

# -- the contract the platform clients are written against -----------------------------------
CYBERBIZ_PREFIX = "/cyberbiz/{shop}"
CYBERBIZ_VARIANT_PATH = "/v1/products/{product_id}/product_variants/{variant_id}"
CYBERBIZ_GROUPS_PATH = "/v1/inventory_sync_groups"
CYBERBIZ_GROUP_PATH = "/v1/inventory_sync_groups/{group_id}"
CYBERBIZ_QUANTITY = "inventory_quantity"
BENTOWEB_PREFIX = "/bentoweb/{shop}"
BENTOWEB_TOKEN_PATH = "/oauth/token"  # noqa: S105 -- a URL path, not a password
BENTOWEB_VARIANT_PATH = "/product-variant/{variant_id}"
BENTOWEB_QUANTITY = "stock"
MAX_QUANTITY = 2**31 - 1

JSON = "application/json"
NO_SYNC_GROUPS = {"error": "inventory sync group add-on not enabled"}

log = get_logger(__name__)


@dataclass(frozen=True, slots=True)
class SimulatorOptions:
    no_sync_groups: frozenset[str] = frozenset()  # Cyberbiz shops without the add-on
    webhooks_to: str | None = None  # ingress base URL for the webhook echo
    token_ttl: float = 3600.0  # BentoWeb ``expires_in``
    log_capacity: int = 1_000_000
    idempotency_capacity: int = 200_000
    create_missing: bool = True  # a PUT to an unknown variant/group creates it
    initial_stock: tuple[StockSeed, ...] = ()  # seeded at start and after /_sim/reset
    webhook_queue_size: int = 10_000


def api_base(base_url: str, shop: ShopConfig) -> str:
    """The ``api_base`` a shop's client uses to talk to the simulator at ``base_url``."""
    prefix = CYBERBIZ_PREFIX if shop.platform == "cyberbiz" else BENTOWEB_PREFIX
    return base_url.rstrip("/") + prefix.format(shop=shop.id)


def point_config_at(config: Config, base_url: str) -> Config:
    """A copy of ``config`` whose simulated shops send their API calls to the simulator."""
    shops = {
        sid: replace(s, api_base=api_base(base_url, s)) if s.platform in SIMULATED_PLATFORMS else s
        for sid, s in config.shops.items()
    }
    return replace(config, shops=shops)


def _dumps(payload: Any) -> bytes:
    return orjson.dumps(payload)


def _json(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(_dumps(payload), status, headers, JSON)


_ERRORS = {
    401: _dumps({"error": "unauthorized"}),
    404: _dumps({"error": "not found"}),
    413: _dumps({"error": "request body too large"}),
    429: _dumps({"error": "rate limit exceeded"}),
    500: _dumps({"error": "internal server error"}),
    502: _dumps({"error": "bad gateway"}),
    503: _dumps({"error": "service unavailable"}),
}
_IDEMPOTENCY_CONFLICT = _dumps(
    {"error": "Idempotency-Key was already used with a different request"}
)


def _scan_headers(raw: Iterable[tuple[bytes, bytes]]) -> tuple[str | None, str | None, int | None]:
    """``Authorization``, ``Idempotency-Key`` and ``Content-Length`` in one pass."""
    authorization = key = None
    length = None
    for name, value in raw:
        if name == b"authorization":
            authorization = value.decode("latin-1")
        elif name == b"idempotency-key":
            key = value.decode("latin-1")
        elif name == b"content-length" and value.isdigit():
            length = int(value)
    return authorization, key, length


async def _read_limited(receive: Receive, limit: int, declared: int | None = None) -> bytes | None:
    """The request body, or None as soon as it is known to exceed ``limit`` bytes."""
    try:
        return await read_body(receive, limit, declared)
    except BodyTooLarge:
        return None


def parse_quantity(body: bytes, name: str) -> tuple[int, list[str]]:
    """``{name: N}`` with N a non-negative integer; else the 422 messages."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return 0, ["body is not valid JSON"]
    if not isinstance(doc, dict):
        return 0, ["body must be a JSON object"]
    if name not in doc:
        return 0, [f"{name} is required"]
    value = doc[name]
    if isinstance(value, bool) or not isinstance(value, int):
        return 0, [f"{name} must be an integer"]
    if not 0 <= value <= MAX_QUANTITY:
        return 0, [f"{name} must be between 0 and {MAX_QUANTITY}"]
    return value, []


@dataclass(slots=True)
class _Call:
    """A platform API request that passed the gate."""

    shop: ShopState
    method: str
    path: str
    t: float
    key: str | None
    body: bytes
    fingerprint: bytes | None
    fail_after: bool


@dataclass(slots=True)
class Simulator:
    """State, faults and webhook emitter behind one app; see :func:`create_app`."""

    config: Config
    options: SimulatorOptions = field(default_factory=SimulatorOptions)
    fault_settings: FaultSettings = field(default_factory=FaultSettings)
    seed: int | None = None
    state: SimState = field(init=False)
    faults: Faults = field(init=False)
    emitter: WebhookEmitter | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        shops = [s for s in self.config.shops.values() if s.platform in SIMULATED_PLATFORMS]
        for sid in self.options.no_sync_groups:
            known = self.config.shops.get(sid)
            if known is None or known.platform != "cyberbiz":
                raise ValueError(f"--no-sync-groups {sid}: not a configured Cyberbiz shop")
        self.state = SimState(
            (
                SimShop.from_config(s, sync_groups=s.id not in self.options.no_sync_groups)
                for s in shops
            ),
            log_capacity=self.options.log_capacity,
            idempotency_capacity=self.options.idempotency_capacity,
            create_missing=self.options.create_missing,
        )
        self.faults = Faults(self.fault_settings, self.seed)
        if self.options.webhooks_to:
            self.emitter = WebhookEmitter(
                self.options.webhooks_to, queue_size=self.options.webhook_queue_size
            )
        for seed in self.options.initial_stock:
            self.state.seed(seed)

    def reset(self) -> None:
        """Back to the start: empty log, initial stock, start-up faults and seed."""
        self.state.reset()
        for seed in self.options.initial_stock:
            self.state.seed(seed)
        self.faults.configure(self.fault_settings, self.seed)

    @asynccontextmanager
    async def lifespan(self, _app: Starlette) -> AsyncIterator[None]:
        if self.emitter is not None:
            await self.emitter.start()
        try:
            yield
        finally:
            if self.emitter is not None:
                await self.emitter.aclose()

    # -- the gate -----------------------------------------------------------------------------

    def _answer(
        self,
        shop: str,
        method: str,
        path: str,
        t: float,
        status: int,
        body: bytes,
        *,
        key: str | None = None,
        headers: Mapping[str, str] | None = None,
        replay: bool = False,
        applied: bool = False,
    ) -> Response:
        self.state.record(shop, method, path, status, t=t, key=key, replay=replay, applied=applied)
        return Response(body, status, headers, JSON)

    def _authorized(self, spec: SimShop, header: str | None) -> bool:
        if header is None or header[:7].lower() != "bearer ":
            return False
        token = header[7:].strip()
        if spec.platform == "cyberbiz":
            return spec.api_token is not None and hmac.compare_digest(
                token.encode(), spec.api_token.encode()
            )
        return self.state.token_shop(token) == spec.id

    async def _enter(
        self, request: Request, platform: Platform, *, write: bool
    ) -> _Call | Response:
        scope = request.scope
        method: str = scope["method"]
        path: str = scope["path"]
        shop_id: str = request.path_params["shop"]
        authorization, key, declared = _scan_headers(scope["headers"])
        state = self.state
        t = state.wall()
        shop = state.shops.get(shop_id)
        if shop is None or shop.spec.platform != platform:
            return self._answer(shop_id, method, path, t, 404, _ERRORS[404], key=key)
        now = state.clock()
        shop.receive(now)
        body = b""
        if write:
            read = await _read_limited(request.receive, shop.spec.max_request_bytes, declared)
            if read is None:
                # uvicorn discards the unread rest, so the client still sees this answer
                return self._answer(shop_id, method, path, t, 413, _ERRORS[413], key=key)
            body = read
        if not self._authorized(shop.spec, authorization):
            return self._answer(shop_id, method, path, t, 401, _ERRORS[401], key=key)
        wait = shop.limiter.admit(now)
        if wait:
            retry = {"retry-after": str(retry_after_seconds(wait))}
            return self._answer(shop_id, method, path, t, 429, _ERRORS[429], key=key, headers=retry)
        decision = self.faults.decide(shop_id, write=write)
        if decision.delay:
            await asyncio.sleep(decision.delay)
        if decision.status is not None:
            extra = None
            if decision.status == 429:
                extra = {"retry-after": str(self.faults.settings.retry_after)}
            status = decision.status
            return self._answer(
                shop_id, method, path, t, status, _ERRORS[status], key=key, headers=extra
            )
        fingerprint = None
        if write and key:
            fingerprint = hashlib.blake2b(
                b"%s %s\n%s" % (method.encode(), path.encode(), body), digest_size=16
            ).digest()
            stored = state.remembered(shop_id, key)
            if stored is not None:
                if stored.fingerprint != fingerprint:
                    conflict = _IDEMPOTENCY_CONFLICT
                    return self._answer(shop_id, method, path, t, 422, conflict, key=key)
                return self._answer(
                    shop_id, method, path, t, stored.status, stored.body, key=key,
                    headers={"idempotent-replayed": "true"}, replay=True,
                )  # fmt: skip
        return _Call(shop, method, path, t, key, body, fingerprint, decision.fail_after)

    def _reject(self, call: _Call, status: int, payload: Any) -> Response:
        return self._answer(
            call.shop.spec.id, call.method, call.path, call.t, status, _dumps(payload), key=call.key
        )

    def _done(self, call: _Call, payload: Any, changes: list[Change] | None = None) -> Response:
        """200 with ``payload``; a write is remembered for its key and echoed as webhooks."""
        body = _dumps(payload)
        spec = call.shop.spec
        applied = changes is not None
        if call.fingerprint is not None and call.key is not None:
            self.state.remember(spec.id, call.key, StoredAnswer(call.fingerprint, 200, body))
        if changes and self.emitter is not None:
            for change in changes:
                self.emitter.emit(variant_webhook(spec, change.variant, change.old))
        status = 200
        if applied and call.fail_after:
            status, body = 500, _ERRORS[500]
        return self._answer(
            spec.id, call.method, call.path, call.t, status, body, key=call.key, applied=applied
        )

    # -- Cyberbiz -----------------------------------------------------------------------------

    async def cyberbiz_variant(self, request: Request) -> Response:
        put = request.scope["method"] == "PUT"
        call = await self._enter(request, "cyberbiz", write=put)
        if isinstance(call, Response):
            return call
        params = request.path_params
        quantity = 0
        if put:
            quantity, errors = parse_quantity(call.body, CYBERBIZ_QUANTITY)
            if errors:
                return self._reject(call, 422, {"messages": errors})
        variant = self.state.variant(
            call.shop, params["variant_id"], params["product_id"], create=put
        )
        if variant is None:
            return self._reject(call, 404, {"error": "not found"})
        changes = self.state.set_variant(call.shop, variant, quantity) if put else None
        return self._done(call, _cyberbiz_variant(variant), changes)

    async def cyberbiz_groups(self, request: Request) -> Response:
        call = await self._enter(request, "cyberbiz", write=False)
        if isinstance(call, Response):
            return call
        if not call.shop.spec.sync_groups:
            return self._reject(call, 422, NO_SYNC_GROUPS)
        return self._done(call, [_cyberbiz_group(g) for g in call.shop.groups.values()])

    async def cyberbiz_group(self, request: Request) -> Response:
        put = request.scope["method"] == "PUT"
        call = await self._enter(request, "cyberbiz", write=put)
        if isinstance(call, Response):
            return call
        if not call.shop.spec.sync_groups:
            return self._reject(call, 422, NO_SYNC_GROUPS)
        quantity = 0
        if put:
            quantity, errors = parse_quantity(call.body, CYBERBIZ_QUANTITY)
            if errors:
                return self._reject(call, 422, {"messages": errors})
        group = self.state.group(call.shop, request.path_params["group_id"], create=put)
        if group is None:
            return self._reject(call, 404, {"error": "not found"})
        changes = self.state.set_group(call.shop, group, quantity) if put else None
        return self._done(call, _cyberbiz_group(group), changes)

    # -- BentoWeb -----------------------------------------------------------------------------

    async def bentoweb_variant(self, request: Request) -> Response:
        call = await self._enter(request, "bentoweb", write=True)
        if isinstance(call, Response):
            return call
        quantity, errors = parse_quantity(call.body, BENTOWEB_QUANTITY)
        if errors:
            return self._reject(call, 422, {"messages": errors})
        variant = self.state.variant(call.shop, request.path_params["variant_id"], create=True)
        if variant is None:
            return self._reject(call, 404, {"error": "not found"})
        changes = self.state.set_variant(call.shop, variant, quantity)
        payload = {"variant_id": platform_id(variant.id), BENTOWEB_QUANTITY: variant.quantity}
        return self._done(call, payload, changes)

    async def bentoweb_token(self, request: Request) -> Response:
        """OAuth client credentials; not rate limited and not in the stats, but logged."""
        method, path = request.scope["method"], request.scope["path"]
        shop_id: str = request.path_params["shop"]
        t = self.state.wall()
        shop = self.state.shops.get(shop_id)
        if shop is None or shop.spec.platform != "bentoweb":
            return self._answer(shop_id, method, path, t, 404, _ERRORS[404])
        body = await _read_limited(request.receive, shop.spec.max_request_bytes)
        if body is None:
            return self._answer(shop_id, method, path, t, 413, _ERRORS[413])
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        client_id, client_secret = _basic_credentials(request.headers.get("authorization"))
        client_id = form.get("client_id", client_id)
        client_secret = form.get("client_secret", client_secret)
        if form.get("grant_type") != "client_credentials":
            return self._answer(
                shop_id, method, path, t, 400, _dumps({"error": "unsupported_grant_type"})
            )
        spec = shop.spec
        if not (
            spec.client_id is not None
            and spec.client_secret is not None
            and hmac.compare_digest((client_id or "").encode(), spec.client_id.encode())
            and hmac.compare_digest((client_secret or "").encode(), spec.client_secret.encode())
        ):
            return self._answer(shop_id, method, path, t, 401, _dumps({"error": "invalid_client"}))
        ttl = self.options.token_ttl
        token = self.state.issue_token(shop_id, ttl)
        payload = {"access_token": token, "token_type": "Bearer", "expires_in": int(ttl)}
        return self._answer(shop_id, method, path, t, 200, _dumps(payload))

    # -- wiring -------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        cb, bw = CYBERBIZ_PREFIX, BENTOWEB_PREFIX
        return [
            Route(cb + CYBERBIZ_VARIANT_PATH, self.cyberbiz_variant, methods=["GET", "PUT"]),
            Route(bw + BENTOWEB_VARIANT_PATH, self.bentoweb_variant, methods=["PUT"]),
            Route(cb + CYBERBIZ_GROUPS_PATH, self.cyberbiz_groups, methods=["GET"]),
            Route(cb + CYBERBIZ_GROUP_PATH, self.cyberbiz_group, methods=["GET", "PUT"]),
            Route(bw + BENTOWEB_TOKEN_PATH, self.bentoweb_token, methods=["POST"]),
            *_control.routes(self),
        ]


def _basic_credentials(header: str | None) -> tuple[str | None, str | None]:
    if header is None or header[:6].lower() != "basic ":
        return None, None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    client_id, sep, secret = decoded.partition(":")
    return (client_id, secret) if sep else (None, None)


def _cyberbiz_variant(variant: Variant) -> dict[str, Any]:
    return {
        "id": platform_id(variant.id),
        "product_id": platform_id(variant.product_id),
        "inventory_quantity": variant.quantity,
        "updated_at": taipei_time(variant.updated_at),
    }


def _cyberbiz_group(group: Group) -> dict[str, Any]:
    return {
        "id": platform_id(group.id),
        "title": f"Group {group.id}",
        "inventory_quantity": group.quantity,
        "variants": [{"product_variant_id": platform_id(v)} for v in group.members],
        "updated_at": taipei_time(group.updated_at),
    }


async def _not_found(_request: Request, _exc: Exception) -> Response:
    return Response(_ERRORS[404], 404, media_type=JSON)


async def _method_not_allowed(_request: Request, _exc: Exception) -> Response:
    return _json(405, {"error": "method not allowed"})


async def _server_error(_request: Request, exc: Exception) -> Response:
    log.error("simulator error", error=repr(exc))
    return Response(_ERRORS[500], 500, media_type=JSON)


def create_app(
    config: Config | None = None,
    *,
    options: SimulatorOptions | None = None,
    faults: FaultSettings | None = None,
    seed: int | None = None,
) -> Starlette:
    """The simulator app; ``app.state.simulator`` is the :class:`Simulator` behind it."""
    simulator = Simulator(
        config if config is not None else demo_config(),
        options or (SimulatorOptions() if config is not None else demo_options()),
        faults or FaultSettings(),
        seed,
    )
    app = Starlette(
        routes=simulator.routes(),
        exception_handlers={
            404: _not_found,
            405: _method_not_allowed,
            Exception: _server_error,
        },
        lifespan=simulator.lifespan,
    )
    app.state.simulator = simulator
    return app


# -- the demo set used without --config -------------------------------------------------------

DEMO_SHOPS = (
    ShopConfig(
        id="cb-taipei",
        platform="cyberbiz",
        api_token="demo-cb-taipei-token",  # noqa: S106 -- demo shop on loopback
        webhook_secrets=("demo-cb-taipei-secret",),
    ),
    ShopConfig(
        id="bento-bkk",
        platform="bentoweb",
        client_id="demo-bento-bkk",
        client_secret="demo-bento-bkk-secret",  # noqa: S106 -- demo shop on loopback
        webhook_secrets=("demo-bento-bkk-token",),
    ),
)


def demo_config(shops: Iterable[ShopConfig] = DEMO_SHOPS) -> Config:
    return Config(shops={s.id: s for s in shops}, source="<simulator demo>")


def demo_options() -> SimulatorOptions:
    return SimulatorOptions(
        initial_stock=(
            StockSeed("cb-taipei", variants={"5001": 10}, products={"5001": "1001"}),
            StockSeed("bento-bkk", variants={"753758": 10}, products={"753758": "53716"}),
        )
    )
