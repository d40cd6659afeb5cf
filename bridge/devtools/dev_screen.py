"""What ``commerce-bridge dev`` shows: one table per sync group, redrawn every second.

Per group: the pool; per member its level at the simulator (the shop's real stock) next to what
the bridge believes (observed, target, writes not echoed yet — ``sync-groups show --json``); the
last change in plain words and how long it took to reach every shop. Below: outbox depth and
events per second on Kafka. :func:`render` is pure (a snapshot in, rich renderables out).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TextIO

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from bridge.devtools.dev_config import GROUPS, DemoGroup
from bridge.devtools.dev_traffic import Journal, Stock, level

RATE_WINDOW = 5.0  # seconds events/s is averaged over
RECENT = 5  # changes listed under the tables
TRAFFIC = {
    "stream": "a sale every 1 to 2 s (POST /_sim/sale: the shop sends its own signed webhook);\n"
    "    now and then a restock (a recount of the group, as `commerce-bridge sync-groups set`)",
    "off": "none (--no-traffic): make your own sales",
    "once": "one sale (--once)",
}


@dataclass(frozen=True, slots=True)
class Endpoints:
    """Where the parts listen, for the header."""

    ingress: str
    ops: str
    simulator: str
    config: str
    traffic: str  # a key of TRAFFIC


@dataclass
class EventRate:
    """Records seen on the bridge's topics: a total and a rate over the last few seconds."""

    total: int = 0
    seen: deque[float] = field(default_factory=deque)

    def add(self, n: int = 1, now: float | None = None) -> None:
        at = time.monotonic() if now is None else now
        self.total += n
        self.seen.extend([at] * n)

    def per_second(self, now: float | None = None) -> float:
        at = time.monotonic() if now is None else now
        while self.seen and self.seen[0] < at - RATE_WINDOW:
            self.seen.popleft()
        return len(self.seen) / RATE_WINDOW


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Everything one redraw shows."""

    stock: Stock
    views: Mapping[str, Mapping[str, Any]]  # group id → sync-groups show --json
    outbox: Mapping[str, int]  # status → rows
    events_per_s: float
    events_total: int


def outbox_by_status(counts: Mapping[tuple[str, str], int]) -> dict[str, int]:
    by: dict[str, int] = {}
    for (_shop, status), n in counts.items():
        by[status] = by.get(status, 0) + n
    return by


def header(where: Endpoints) -> Text:
    text = Text()
    text.append("commerce-bridge dev", style="bold")
    text.append(" — 3 shops, 2 sync groups, one stock per product everywhere\n")
    text.append(f"  ingress {where.ingress}   ops {where.ops}   simulator {where.simulator}\n")
    text.append(f"  config {where.config}\n")
    text.append(f"  traffic: {TRAFFIC[where.traffic]}\n")
    text.append("  make a sale yourself:\n", style="bold")
    text.append(
        f"    curl -X POST {where.simulator}/_sim/sale "
        """-d '{"shop":"cb-taipei","variant":"5001","quantity":2}'\n"""
    )
    text.append("  Ctrl-C stops everything")
    return text


def _member_rows(table: Table, g: DemoGroup, snap: Snapshot) -> None:
    view = snap.views.get(g.id, {})
    believed = view.get("members", [])
    pool = view.get("pool")
    for i, member in enumerate(g.members):
        at_shop = level(snap.stock, member)
        belief = believed[i] if i < len(believed) else {}
        unechoed = ", ".join(str(p["value"]) for p in belief.get("unechoed", [])) or "-"
        in_step = at_shop is not None and at_shop == pool
        table.add_row(
            member.label,
            Text(_opt(at_shop), style="green" if in_step else "yellow"),
            _opt(belief.get("observed")),
            _opt(belief.get("target_level")),
            unechoed,
        )


def group_table(g: DemoGroup, snap: Snapshot, journal: Journal) -> RenderableType:
    view = snap.views.get(g.id, {})
    pool = view.get("pool")
    last = journal.last(g.id)
    title = f"{g.id} ({g.title}) — pool {_opt(pool)}"
    caption = Text("  last change: " + (last.words() if last else "none yet"))
    table = Table(title=title, title_justify="left")
    table.add_column("shop / variant")
    table.add_column("at the shop", justify="right")
    table.add_column("bridge: observed", justify="right")
    table.add_column("target", justify="right")
    table.add_column("writes not echoed yet")
    _member_rows(table, g, snap)
    return Group(table, caption)


def footer(snap: Snapshot, journal: Journal) -> Text:
    outbox = snap.outbox
    text = Text()
    text.append(
        f"outbox: {outbox.get('pending', 0)} pending · {outbox.get('in_flight', 0)} in flight"
        f" · {outbox.get('done', 0)} done · {outbox.get('superseded', 0)} superseded"
        f" · {outbox.get('dead', 0)} dead"
    )
    text.append(f"    kafka: {snap.events_per_s:.1f} events/s ({snap.events_total} seen)\n")
    recent = list(journal.changes)[-RECENT:]
    if recent:
        text.append("latest changes, newest first:\n")
    for change in reversed(recent):
        text.append(f"  {change.group:<12} {change.words()}\n")
    spreads = sorted(journal.sale_spreads)
    if spreads:
        median = spreads[len(spreads) // 2]
        text.append(
            f"the last {len(spreads)} sale(s) reached every shop in {median:.2f} s (median),"
            f" {spreads[-1]:.2f} s at the slowest"
        )
    return text


def render(where: Endpoints, snap: Snapshot, journal: Journal) -> RenderableType:
    tables = [group_table(g, snap, journal) for g in GROUPS]
    return Group(header(where), *tables, footer(snap, journal))


def _opt(value: object) -> str:
    return "-" if value is None else str(value)


def plain_console(out: TextIO) -> Console:
    """A console for a pipe or a file: no colours, no cursor tricks, a fixed width."""
    return Console(file=out, width=110, color_system=None, force_terminal=False)


class Lines:
    """The dev command's line output (start-up steps, changes), for a terminal or a pipe."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def say(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)
