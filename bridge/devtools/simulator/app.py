"""The simulator's HTTP face: Cyberbiz and BentoWeb write APIs plus ``/_sim`` inspection.

Every platform API request passes the same gate, in this order: unknown shop (404), body over the
shop's ``max_request_bytes`` (413, read streaming), bad credentials (401), rate window (429), fault
injection (429/5xx, latency), ``Idempotency-Key`` replay or conflict (422); then the handler
validates (422), applies, and the answer is logged.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import random
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.config import Config
from bridge.devtools.simulator._control import routes as control_routes
from bridge.devtools.simulator._wire import (
    ERRORS,
    IDEMPOTENCY_CONFLICT,
    JSON,
    basic_credentials,
    cyberbiz_group_body,
    cyberbiz_variant_body,
    dumps,
    json_response,
    parse_quantity,
    read_limited,
    scan_headers,
)
from bridge.devtools.simulator.faults import Faults, FaultSettings
from bridge.devtools.simulator.options import (
    BENTOWEB_PREFIX,
    CYBERBIZ_PREFIX,
    SimulatorOptions,
    demo_config,
    demo_options,
)
from bridge.devtools.simulator.state import (
    SIMULATED_PLATFORMS,
    Change,
    Platform,
    ShopState,
    SimShop,
    SimState,
    StoredAnswer,
    retry_after_seconds,
)
from bridge.devtools.simulator.webhooks import WebhookEmitter, platform_id, variant_webhook
from bridge.log import get_logger
from bridge.platforms.bentoweb import client as bentoweb_api
from bridge.platforms.cyberbiz import client as cyberbiz_api

# -- the contract the platform clients are written against (their own constants) ------------
CYBERBIZ_VARIANT_PATH = cyberbiz_api.VARIANT_PATH
CYBERBIZ_GROUPS_PATH = cyberbiz_api.SYNC_GROUPS_PATH
CYBERBIZ_GROUP_PATH = cyberbiz_api.SYNC_GROUP_PATH
CYBERBIZ_QUANTITY = cyberbiz_api.STOCK_FIELD
BENTOWEB_TOKEN_PATH = bentoweb_api.TOKEN_PATH
BENTOWEB_VARIANT_PATH = bentoweb_api.STOCK_PATH
BENTOWEB_QUANTITY = bentoweb_api.STOCK_FIELD
IDEMPOTENCY_HEADER = "Idempotency-Key"
NO_SYNC_GROUPS = {"error": "inventory sync group add-on not enabled"}

log = get_logger(__name__)


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
    drops: random.Random = field(init=False)

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
        self.drops = random.Random(self.seed)  # noqa: S311 -- fault injection, not cryptography
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
        self.drops.seed(self.seed)

    def echo(self, shop: ShopState, changes: Iterable[Change]) -> None:
        """Send the platform's webhook for each change, less the ``drop_webhooks`` share."""
        if self.emitter is None:
            return
        rate = self.options.drop_webhooks
        for change in changes:
            if rate and self.drops.random() < rate:
                shop.webhooks_dropped += 1
                continue
            self.emitter.emit(variant_webhook(shop.spec, change.variant, change.old))

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
        authorization, key, declared = scan_headers(scope["headers"])
        state = self.state
        t = state.wall()
        shop = state.shops.get(shop_id)
        if shop is None or shop.spec.platform != platform:
            return self._answer(shop_id, method, path, t, 404, ERRORS[404], key=key)
        now = state.clock()
        shop.receive(now)
        body = b""
        if write:
            limit = shop.spec.max_request_bytes
            read = None
            if declared is None or declared <= limit:
                read = await read_limited(request.receive, limit)
            if read is None:
                # uvicorn discards the unread rest, so the client still sees this answer
                return self._answer(shop_id, method, path, t, 413, ERRORS[413], key=key)
            body = read
        if not self._authorized(shop.spec, authorization):
            return self._answer(shop_id, method, path, t, 401, ERRORS[401], key=key)
        wait = shop.limiter.admit(now)
        if wait:
            retry = {"retry-after": str(retry_after_seconds(wait))}
            return self._answer(shop_id, method, path, t, 429, ERRORS[429], key=key, headers=retry)
        decision = self.faults.decide(shop_id, write=write)
        if decision.delay:
            await asyncio.sleep(decision.delay)
        if decision.status is not None:
            extra = None
            if decision.status == 429:
                extra = {"retry-after": str(self.faults.settings.retry_after)}
            status = decision.status
            return self._answer(
                shop_id, method, path, t, status, ERRORS[status], key=key, headers=extra
            )
        fingerprint = None
        if write and key:
            fingerprint = hashlib.blake2b(
                b"%s %s\n%s" % (method.encode(), path.encode(), body), digest_size=16
            ).digest()
            stored = state.remembered(shop_id, key)
            if stored is not None:
                if stored.fingerprint != fingerprint:
                    conflict = IDEMPOTENCY_CONFLICT
                    return self._answer(shop_id, method, path, t, 422, conflict, key=key)
                return self._answer(
                    shop_id, method, path, t, stored.status, stored.body, key=key,
                    headers={"idempotent-replayed": "true"}, replay=True,
                )  # fmt: skip
        return _Call(shop, method, path, t, key, body, fingerprint, decision.fail_after)

    def _reject(self, call: _Call, status: int, payload: Any) -> Response:
        return self._answer(
            call.shop.spec.id, call.method, call.path, call.t, status, dumps(payload), key=call.key
        )

    def _done(self, call: _Call, payload: Any, changes: list[Change] | None = None) -> Response:
        """200 with ``payload``; a write is remembered for its key and echoed as webhooks."""
        body = dumps(payload)
        spec = call.shop.spec
        applied = changes is not None
        if call.fingerprint is not None and call.key is not None:
            self.state.remember(spec.id, call.key, StoredAnswer(call.fingerprint, 200, body))
        if changes:
            self.echo(call.shop, changes)
        status = 200
        if applied and call.fail_after:
            status, body = 500, ERRORS[500]
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
        return self._done(call, cyberbiz_variant_body(variant), changes)

    async def cyberbiz_groups(self, request: Request) -> Response:
        call = await self._enter(request, "cyberbiz", write=False)
        if isinstance(call, Response):
            return call
        if not call.shop.spec.sync_groups:
            return self._reject(call, 422, NO_SYNC_GROUPS)
        return self._done(call, [cyberbiz_group_body(g) for g in call.shop.groups.values()])

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
        return self._done(call, cyberbiz_group_body(group), changes)

    # -- BentoWeb -----------------------------------------------------------------------------

    async def bentoweb_variant(self, request: Request) -> Response:
        write = request.scope["method"] == bentoweb_api.STOCK_METHOD
        call = await self._enter(request, "bentoweb", write=write)
        if isinstance(call, Response):
            return call
        quantity = 0
        if write:
            quantity, errors = parse_quantity(call.body, BENTOWEB_QUANTITY)
            if errors:
                return self._reject(call, 422, {"messages": errors})
        variant_id = request.path_params["variant_id"]
        variant = self.state.variant(call.shop, variant_id, create=write)
        if variant is None:
            return self._reject(call, 404, {"error": "not found"})
        changes = self.state.set_variant(call.shop, variant, quantity) if write else None
        payload = {"variant_id": platform_id(variant.id), BENTOWEB_QUANTITY: variant.quantity}
        return self._done(call, payload, changes)

    async def bentoweb_token(self, request: Request) -> Response:
        """OAuth client credentials; not rate limited and not in the stats, but logged."""
        method, path = request.scope["method"], request.scope["path"]
        shop_id: str = request.path_params["shop"]
        t = self.state.wall()
        shop = self.state.shops.get(shop_id)
        if shop is None or shop.spec.platform != "bentoweb":
            return self._answer(shop_id, method, path, t, 404, ERRORS[404])
        body = await read_limited(request.receive, shop.spec.max_request_bytes)
        if body is None:
            return self._answer(shop_id, method, path, t, 413, ERRORS[413])
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        client_id, client_secret = basic_credentials(request.headers.get("authorization"))
        client_id = form.get("client_id", client_id)
        client_secret = form.get("client_secret", client_secret)
        if form.get("grant_type") != "client_credentials":
            return self._answer(
                shop_id, method, path, t, 400, dumps({"error": "unsupported_grant_type"})
            )
        spec = shop.spec
        if not (
            spec.client_id is not None
            and spec.client_secret is not None
            and hmac.compare_digest((client_id or "").encode(), spec.client_id.encode())
            and hmac.compare_digest((client_secret or "").encode(), spec.client_secret.encode())
        ):
            return self._answer(shop_id, method, path, t, 401, dumps({"error": "invalid_client"}))
        ttl = self.options.token_ttl
        token = self.state.issue_token(shop_id, ttl)
        payload = {"access_token": token, "token_type": "Bearer", "expires_in": int(ttl)}
        return self._answer(shop_id, method, path, t, 200, dumps(payload))

    # -- wiring -------------------------------------------------------------------------------

    def routes(self) -> list[Route]:
        cb, bw = CYBERBIZ_PREFIX, BENTOWEB_PREFIX
        return [
            Route(cb + CYBERBIZ_VARIANT_PATH, self.cyberbiz_variant, methods=["GET", "PUT"]),
            Route(
                bw + BENTOWEB_VARIANT_PATH,
                self.bentoweb_variant,
                methods=["GET", bentoweb_api.STOCK_METHOD],
            ),
            Route(cb + CYBERBIZ_GROUPS_PATH, self.cyberbiz_groups, methods=["GET"]),
            Route(cb + CYBERBIZ_GROUP_PATH, self.cyberbiz_group, methods=["GET", "PUT"]),
            Route(bw + BENTOWEB_TOKEN_PATH, self.bentoweb_token, methods=["POST"]),
            *control_routes(self),
        ]


async def _not_found(_request: Request, _exc: Exception) -> Response:
    return Response(ERRORS[404], 404, media_type=JSON)


async def _method_not_allowed(_request: Request, _exc: Exception) -> Response:
    return json_response(405, {"error": "method not allowed"})


async def _server_error(_request: Request, exc: Exception) -> Response:
    log.error("simulator error", error=repr(exc))
    return Response(ERRORS[500], 500, media_type=JSON)


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
