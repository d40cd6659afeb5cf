"""``/_sim``: inspect and steer the simulator (stock, request log, stats, faults, sales)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import replace
from typing import Any, Protocol

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bridge.devtools.simulator.faults import Faults
from bridge.devtools.simulator.options import SimulatorOptions
from bridge.devtools.simulator.state import Change, ShopState, SimState, StockSeed
from bridge.devtools.simulator.webhooks import WebhookEmitter


class Simulator(Protocol):
    """What ``/_sim`` steers (``bridge.devtools.simulator.app.Simulator``)."""

    state: SimState
    faults: Faults
    options: SimulatorOptions
    emitter: WebhookEmitter | None

    def reset(self) -> None: ...

    def echo(self, shop: ShopState, changes: Iterable[Change]) -> None: ...


Endpoint = Callable[[Request], Coroutine[Any, Any, Response]]


class _BadRequest(ValueError):
    """A /_sim request the simulator cannot act on; becomes 400 ``{"error": ...}``."""


def _json(status: int, payload: Any) -> Response:
    return Response(orjson.dumps(payload), status, media_type="application/json")


async def _object(request: Request) -> dict[str, Any]:
    try:
        doc = orjson.loads(await request.body())
    except orjson.JSONDecodeError:
        raise _BadRequest("body is not valid JSON") from None
    if not isinstance(doc, dict):
        raise _BadRequest("body must be a JSON object")
    return doc


def _count(value: Any, what: str, *, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _BadRequest(f"{what} must be an integer >= {minimum}")
    return value


def _id(value: Any, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        raise _BadRequest(f"{what} must be a string or integer id")
    return str(value)


def _mapping(doc: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = doc.get(name, {})
    if not isinstance(value, dict):
        raise _BadRequest(f"{name} must be an object")
    return value


def parse_seed(doc: Mapping[str, Any], shops: Mapping[str, object]) -> StockSeed:
    """``{"shop", "variants": {id: qty}, "groups": {id: qty}, "products": {variant: product},
    "group_members": {group: [variant, ...]}}``."""
    shop = doc.get("shop")
    if not isinstance(shop, str) or shop not in shops:
        raise _BadRequest(f"unknown shop {shop!r}")
    members: dict[str, list[str]] = {}
    for gid, vids in _mapping(doc, "group_members").items():
        if not isinstance(vids, list):
            raise _BadRequest(f"group_members.{gid} must be a list of variant ids")
        members[gid] = [_id(v, f"group_members.{gid}[]") for v in vids]
    return StockSeed(
        shop=shop,
        variants={k: _count(v, f"variants.{k}") for k, v in _mapping(doc, "variants").items()},
        groups={k: _count(v, f"groups.{k}") for k, v in _mapping(doc, "groups").items()},
        products={k: _id(v, f"products.{k}") for k, v in _mapping(doc, "products").items()},
        group_members=members,
    )


def routes(sim: Simulator) -> list[Route]:
    state = sim.state

    async def get_stock(_request: Request) -> Response:
        return _json(200, state.stock())

    async def post_stock(request: Request) -> Response:
        state.seed(parse_seed(await _object(request), state.shops))
        return _json(200, state.stock())

    async def get_requests(request: Request) -> Response:
        query = request.query_params
        try:
            since = int(query.get("since", "0"))
            limit = int(query["limit"]) if "limit" in query else None
        except ValueError:
            raise _BadRequest("since and limit must be integers") from None
        return _json(200, state.requests(query.get("shop"), since, limit))

    async def get_stats(_request: Request) -> Response:
        return _json(200, state.stats())

    async def get_faults(_request: Request) -> Response:
        return _json(200, {**sim.faults.settings.to_json(), "seed": sim.faults.seed})

    async def post_faults(request: Request) -> Response:
        doc = await _object(request)
        try:
            settings = sim.faults.settings.updated(doc)
        except ValueError as exc:
            raise _BadRequest(str(exc)) from None
        seed = doc.get("seed")
        if seed is not None:
            seed = _count(seed, "seed")
        sim.faults.configure(settings, seed)
        return await get_faults(request)

    async def post_reset(_request: Request) -> Response:
        sim.reset()
        return _json(200, {"reset": True})

    async def post_sale(request: Request) -> Response:
        """An external sale in a shop: stock goes down and the platform's webhook goes out."""
        doc = await _object(request)
        shop_id = doc.get("shop")
        shop = state.shops.get(shop_id) if isinstance(shop_id, str) else None
        if shop is None:
            return _json(404, {"error": f"unknown shop {doc.get('shop')!r}"})
        variant_id = _id(doc.get("variant"), "variant")
        quantity = _count(doc.get("quantity", 1), "quantity", minimum=1)
        variant = state.variant(shop, variant_id, create=False)
        if variant is None:
            return _json(404, {"error": f"unknown variant {variant_id!r}"})
        old = variant.quantity
        changes = state.sale(shop, variant, quantity)
        if changes is None:
            return _json(409, {"error": "insufficient stock", "available": old})
        sim.echo(shop, changes)
        payload = {"shop": shop.spec.id, "variant": variant_id, "old": old, "new": variant.quantity}
        return _json(200, payload)

    async def post_tokens(request: Request) -> Response:
        """``{"ttl": s}`` sets BentoWeb's ``expires_in``; ``{"expire": true, "shop"?}`` revokes."""
        doc = await _object(request)
        if "ttl" in doc:
            ttl = doc["ttl"]
            if isinstance(ttl, bool) or not isinstance(ttl, int | float) or ttl <= 0:
                raise _BadRequest("ttl must be a number > 0")
            sim.options = replace(sim.options, token_ttl=float(ttl))
        expired = 0
        if doc.get("expire"):
            shop = doc.get("shop")
            if shop is not None and not isinstance(shop, str):
                raise _BadRequest("shop must be a shop id")
            expired = state.expire_tokens(shop)
        return _json(200, {"token_ttl": sim.options.token_ttl, "expired": expired})

    async def get_webhooks(_request: Request) -> Response:
        if sim.emitter is None:
            return _json(200, {"to": None})
        return _json(200, sim.emitter.counters())

    async def get_health(_request: Request) -> Response:
        return _json(200, {"ok": True})

    def guarded(endpoint: Endpoint) -> Endpoint:
        async def run(request: Request) -> Response:
            try:
                return await endpoint(request)
            except _BadRequest as exc:
                return _json(400, {"error": str(exc)})

        return run

    table: list[tuple[str, Endpoint, list[str]]] = [
        ("/_sim/stock", get_stock, ["GET"]),
        ("/_sim/stock", post_stock, ["POST"]),
        ("/_sim/requests", get_requests, ["GET"]),
        ("/_sim/stats", get_stats, ["GET"]),
        ("/_sim/faults", get_faults, ["GET"]),
        ("/_sim/faults", post_faults, ["POST"]),
        ("/_sim/reset", post_reset, ["POST"]),
        ("/_sim/sale", post_sale, ["POST"]),
        ("/_sim/tokens", post_tokens, ["POST"]),
        ("/_sim/webhooks", get_webhooks, ["GET"]),
        ("/_sim/health", get_health, ["GET"]),
    ]
    return [Route(path, guarded(fn), methods=methods) for path, fn, methods in table]
