"""The demo world of ``commerce-bridge dev``: its shops, sync groups, starting stock and config.

Two Cyberbiz shops (cb-taipei, cb-tainan) and one BentoWeb shop (bento-bkk) sell the same two
goods; each good is one sync group with one variant per shop. The simulator starts with uneven
levels (as real shops do before a recount) and ``commerce-bridge dev`` recounts every group to
:data:`START_POOL`, so every shop starts equal.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bridge.devtools.simulator.state import StockSeed

START_POOL = 40  # what every group is recounted to at start


@dataclass(frozen=True, slots=True)
class DemoMember:
    """One shop's variant in a sync group, as the simulator and the config both name it."""

    shop: str
    variant: str
    product: str | None  # Cyberbiz writes need the product id
    start: int  # the simulator's level before the recount

    @property
    def label(self) -> str:
        return f"{self.shop} {self.variant}"


@dataclass(frozen=True, slots=True)
class DemoGroup:
    id: str
    title: str
    members: tuple[DemoMember, ...]


GROUPS = (
    DemoGroup(
        "tee-black-m",
        "black tee, size M",
        (
            DemoMember("cb-taipei", "5001", "1001", 42),
            DemoMember("cb-tainan", "6001", "2001", 35),
            DemoMember("bento-bkk", "753758", None, 40),
        ),
    ),
    DemoGroup(
        "cap-navy",
        "navy cap",
        (
            DemoMember("cb-taipei", "5002", "1002", 18),
            DemoMember("cb-tainan", "6002", "2002", 22),
            DemoMember("bento-bkk", "753759", None, 25),
        ),
    ),
)

SHOPS = ("cb-taipei", "cb-tainan", "bento-bkk")


def group(group_id: str) -> DemoGroup:
    return next(g for g in GROUPS if g.id == group_id)


def initial_stock() -> tuple[StockSeed, ...]:
    """The simulator's stock at start: every member of every group, with its product id."""
    seeds = []
    for shop in SHOPS:
        members = [m for g in GROUPS for m in g.members if m.shop == shop]
        seeds.append(
            StockSeed(
                shop,
                variants={m.variant: m.start for m in members},
                products={m.variant: m.product for m in members if m.product is not None},
            )
        )
    return tuple(seeds)


def pii_key(workdir: Path) -> str:
    """A dev AES key kept in the work dir, so events of earlier runs stay decryptable."""
    return _kept(workdir / "pii.key", lambda: base64.b64encode(secrets.token_bytes(32)).decode())


def topic_prefix(workdir: Path) -> str:
    """The work dir's own topic prefix: two dev runs on one broker never share a consumer group."""
    return _kept(workdir / "topic-prefix", lambda: f"dev-{secrets.token_hex(4)}")


def _kept(path: Path, make: Callable[[], str]) -> str:
    if not path.exists():
        path.write_text(make() + "\n")
        path.chmod(0o600)
    return path.read_text().strip()


def _shop(shop: str, platform: str, sim_url: str) -> str:
    if platform == "cyberbiz":
        return f"""[[shops]]
id = "{shop}"
platform = "cyberbiz"
api_base = "{sim_url}/cyberbiz/{shop}"
api_token = "dev-{shop}-token"
webhook_secrets = ["dev-{shop}-secret"]
rate_limit = 5.0
"""
    return f"""[[shops]]
id = "{shop}"
platform = "bentoweb"
api_base = "{sim_url}/bentoweb/{shop}"
client_id = "dev-{shop}"
client_secret = "dev-{shop}-client-secret"
webhook_secrets = ["dev-{shop}-token"]
rate_limit = 5.0
"""


def _group(g: DemoGroup) -> str:
    lines = [f"[[sync_groups]]  # {g.title}", f'id = "{g.id}"', "members = ["]
    for m in g.members:
        product = f'product = "{m.product}", ' if m.product else ""
        lines.append(f'  {{ shop = "{m.shop}", {product}variant = "{m.variant}" }},')
    return "\n".join([*lines, "]", ""])


def dev_config_text(workdir: Path, bootstrap: str, sim_url: str) -> str:
    """The example configuration, with shops pointing at the simulator and dev secrets inline."""
    shops = "\n".join(
        _shop(s, "bentoweb" if s.startswith("bento") else "cyberbiz", sim_url) for s in SHOPS
    )
    groups = "\n".join(_group(g) for g in GROUPS)
    return f"""# Written by `commerce-bridge dev`: a local demo configuration. Secrets are inline
# because they are throwaway dev values; in production use env:NAME (see bridge.example.toml).
[kafka]
bootstrap_servers = "{bootstrap}"
topic_prefix = "{topic_prefix(workdir)}"
linger_ms = 2

[ingress]
max_event_age = 0  # the samples (bridge/data/samples) are dated 2024: no Cyberbiz age bound here

[outbox]
dsn = "sqlite:///{workdir.resolve() / "outbox.db"}"

[relay]
poll_interval = 0.05

[inventory_sync]
reconcile_interval = 30  # read every member's real level every 30 s (catches lost webhooks)

[privacy]
mode = "encrypt"
key = "{pii_key(workdir)}"

{shops}
{groups}"""
