"""Shops, credentials and small helpers shared by the simulator tests."""

from __future__ import annotations

import httpx

from bridge.config import Config, ShopConfig

CB_TOKEN = "cb-token"
CB_SECRET = "cb-webhook-secret"
BW_CLIENT = "bw-client"
BW_SECRET = "bw-client-secret"
BW_HOOK_TOKEN = "bw-hook-token"

SHOPS = (
    ShopConfig(id="cb-1", platform="cyberbiz", api_token=CB_TOKEN, webhook_secrets=(CB_SECRET,)),
    ShopConfig(id="cb-nogroups", platform="cyberbiz", api_token=CB_TOKEN, webhook_secrets=("x",)),
    ShopConfig(
        id="cb-fast",
        platform="cyberbiz",
        api_token=CB_TOKEN,
        webhook_secrets=(CB_SECRET,),
        rate_limit=10_000.0,
    ),
    ShopConfig(
        id="cb-small",
        platform="cyberbiz",
        api_token=CB_TOKEN,
        webhook_secrets=("x",),
        max_request_bytes=1024,
    ),
    ShopConfig(
        id="bw-1",
        platform="bentoweb",
        client_id=BW_CLIENT,
        client_secret=BW_SECRET,
        webhook_secrets=(BW_HOOK_TOKEN,),
    ),
    ShopConfig(id="std-1", platform="standard", webhook_secrets=("x",)),
)
CONFIG = Config(shops={s.id: s for s in SHOPS})
AUTH = {"Authorization": f"Bearer {CB_TOKEN}"}


def variant_path(shop: str, variant: str = "5001", product: str = "1001") -> str:
    return f"/cyberbiz/{shop}/v1/products/{product}/product_variants/{variant}"


async def bento_token(client: httpx.AsyncClient, shop: str = "bw-1") -> str:
    form = {"grant_type": "client_credentials", "client_id": BW_CLIENT, "client_secret": BW_SECRET}
    response = await client.post(f"/bentoweb/{shop}/oauth/token", data=form)
    assert 200 == response.status_code
    token: str = response.json()["access_token"]
    return token
