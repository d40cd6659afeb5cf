"""How a simulator is set up: its options, where each simulated shop's API lives, the demo set."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from bridge.config import Config, ShopConfig
from bridge.devtools.simulator.state import SIMULATED_PLATFORMS, StockSeed

CYBERBIZ_PREFIX = "/cyberbiz/{shop}"
BENTOWEB_PREFIX = "/bentoweb/{shop}"


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
    drop_webhooks: float = 0.0  # share of echo webhooks dropped on purpose (seeded by ``seed``)

    def __post_init__(self) -> None:
        if not 0.0 <= self.drop_webhooks <= 1.0:
            raise ValueError(f"drop_webhooks must be within [0, 1], got {self.drop_webhooks}")


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
