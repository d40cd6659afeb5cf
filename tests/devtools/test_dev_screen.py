"""The dev screen: events/s and what one redraw shows for a snapshot."""

from __future__ import annotations

import io
import re

from bridge.devtools.dev_config import GROUPS
from bridge.devtools.dev_screen import (
    Endpoints,
    EventRate,
    Snapshot,
    outbox_by_status,
    plain_console,
    render,
)
from bridge.devtools.dev_traffic import Change, Journal

WHERE = Endpoints("http://127.0.0.1:8080", "http://127.0.0.1:9", "http://127.0.0.1:8081",
                  ".bridge-dev/bridge.toml", "stream")  # fmt: skip


def test_event_rate_counts_only_the_last_five_seconds() -> None:
    """Records older than the window leave the rate but stay in the total."""
    rate = EventRate()
    rate.add(10, now=100.0)
    rate.add(5, now=104.0)
    assert (3.0, 1.0, 15) == (rate.per_second(now=104.5), rate.per_second(now=106.0), rate.total)


def test_outbox_counts_are_summed_over_shops() -> None:
    """store.counts() is per (shop, status); the screen shows one number per status."""
    counts = {("cb-taipei", "done"): 3, ("bento-bkk", "done"): 2, ("cb-tainan", "pending"): 1}
    assert {"done": 5, "pending": 1} == outbox_by_status(counts)


def _snapshot() -> Snapshot:
    stock: dict[str, dict[str, dict[str, int]]] = {}
    for g in GROUPS:
        for m in g.members:
            level = 38 if g is GROUPS[0] else 40
            stock.setdefault(m.shop, {"variants": {}})["variants"][m.variant] = level
    views = {
        g.id: {
            "pool": 38 if g is GROUPS[0] else 40,
            "members": [{"observed": 38, "target_level": 38, "unechoed": []} for _ in g.members],
        }
        for g in GROUPS
    }
    return Snapshot(stock, views, {"done": 8}, 2.4, 17)


def test_a_redraw_shows_pools_levels_the_last_change_and_how_to_sell() -> None:
    """The header has the curl command with the simulator's port; each group its pool, each
    member's level; the last change in words; the outbox and Kafka counts."""
    journal = Journal()
    journal.add(Change("sale", GROUPS[0].id, "cb-tainan", -2, 38, 0.0, spread=0.42))
    out = io.StringIO()
    plain_console(out).print(render(WHERE, _snapshot(), journal))
    text = out.getvalue()
    expected = [
        "curl -X POST http://127.0.0.1:8081/_sim/sale -d "
        """'{"shop":"cb-taipei","variant":"5001","quantity":2}'""",
        "tee-black-m (black tee, size M) — pool 38",
        "cap-navy (navy cap) — pool 40",
        "last change: sale of 2 at cb-tainan → every shop at 38 in 0.42 s",
        "outbox: 0 pending · 0 in flight · 8 done · 0 superseded · 0 dead",
        "kafka: 2.4 events/s (17 seen)",
    ]
    assert [] == [line for line in expected if line not in text]
    rows = [f"{m.label}" for m in GROUPS[0].members]
    matched = [
        r for r in rows if re.search(re.escape(r) + r"\s+│\s+38\s+│\s+38\s+│\s+38\s+│", text)
    ]
    assert rows == matched, text
