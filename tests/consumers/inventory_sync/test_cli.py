"""``commerce-bridge sync-groups show|set|pull`` against a real outbox and the platform simulator."""

from __future__ import annotations

import asyncio
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest

from bridge.cli import main
from bridge.config import parse_config
from bridge.devtools.simulator import running_simulator
from bridge.outbox.store import open_store
from tests.consumers.inventory_sync.support import config_text


@pytest.fixture
async def sim_url() -> AsyncIterator[str]:
    async with running_simulator(parse_config(config_text(), {})) as url:
        yield url


@pytest.fixture
def config_file(tmp_path: Path, sim_url: str) -> Path:
    text = config_text(f"sqlite:///{tmp_path / 'outbox.db'}").replace(
        "http://127.0.0.1:9/cb", f"{sim_url}/cyberbiz/cb-taipei"
    )
    path = tmp_path / "bridge.toml"
    path.write_text(text, encoding="utf-8")
    return path


async def run(capsys: pytest.CaptureFixture[str], config: Path, *args: str) -> tuple[int, str, str]:
    """Run ``commerce-bridge sync-groups ARGS`` (in a thread: it runs its own event loop)."""
    code = await asyncio.to_thread(main, ["sync-groups", *args, "--config", str(config)])
    out, err = capsys.readouterr()
    return code, out, err


async def test_show_lists_every_group_before_any_level(
    capsys: pytest.CaptureFixture[str], config_file: Path
) -> None:
    """A fresh outbox: every configured group and member, no pool yet."""
    code, out, _ = await run(capsys, config_file, "show")
    assert (0, True, True) == (
        code,
        "sync group tee  pool none (no level seen yet)" in out,
        "bento-bkk/variant:753758" in out and "cb-taipei/group:77" in out,
    )


async def test_set_recounts_and_queues_a_write_for_every_member(
    capsys: pytest.CaptureFixture[str], config_file: Path, tmp_path: Path
) -> None:
    """set GROUP QTY: pool = QTY, a set_stock row per member (buffer applied), printed."""
    code, out, _ = await run(capsys, config_file, "set", "tee", "12")
    assert 0 == code
    assert [
        "sync group tee: pool None -> 12",
        "  queued set_stock bento-bkk variant:753758 = 10 (outbox #1)",
        "  queued set_stock cb-taipei variant:5001 = 12 (outbox #2)",
        "  queued set_stock std-orders variant:o-1 = 12 (outbox #3)",
    ] == out.splitlines()
    store = await open_store(f"sqlite:///{tmp_path / 'outbox.db'}")
    try:
        rows = await store.list_rows(limit=10)
    finally:
        await store.close()
    assert {("bento-bkk", 10), ("cb-taipei", 12), ("std-orders", 12)} == {
        (r.shop, r.payload["quantity"]) for r in rows
    }


async def test_show_json_after_a_recount(
    capsys: pytest.CaptureFixture[str], config_file: Path
) -> None:
    """--json: pool, members with their target level and the un-echoed writes."""
    await run(capsys, config_file, "set", "tee", "12")
    code, out, _ = await run(capsys, config_file, "show", "--json")
    tee = next(g for g in orjson.loads(out)["groups"] if g["group"] == "tee")
    bento = next(m for m in tee["members"] if m["shop"] == "bento-bkk")
    assert (0, 12, "recount", 10, [10], 2) == (
        code,
        tee["pool"],
        tee["last_change"]["kind"],
        bento["target_level"],
        [w["value"] for w in bento["unechoed"]],
        bento["buffer"],
    )


async def test_set_an_unknown_group_exits_2_listing_the_known_ones(
    capsys: pytest.CaptureFixture[str], config_file: Path
) -> None:
    """An unknown group is named, with the known ones, and nothing is queued."""
    code, out, err = await run(capsys, config_file, "set", "shirt", "3")
    assert (
        2,
        "",
        "commerce-bridge sync-groups: unknown sync group 'shirt' (known: mug, tee)\n",
    ) == (
        code,
        out,
        err,
    )


async def test_set_refuses_a_negative_quantity(
    capsys: pytest.CaptureFixture[str], config_file: Path
) -> None:
    """QTY must be a whole number >= 0 (usage error, exit 2)."""
    with pytest.raises(SystemExit) as exited:
        await run(capsys, config_file, "set", "tee", "-1")
    assert (2, True) == (exited.value.code, "QTY must be >= 0" in capsys.readouterr().err)


async def test_pull_prints_the_cyberbiz_groups_as_config(
    capsys: pytest.CaptureFixture[str], config_file: Path, sim_url: str
) -> None:
    """pull --shop: the shop's inventory sync groups as [[sync_groups]] TOML that parses."""
    seed = {
        "shop": "cb-taipei",
        "variants": {"6001": 3, "6002": 3, "7001": 1},
        "groups": {"77": 3, "88": 1},
        "group_members": {"77": ["6001", "6002"], "88": ["7001"]},
    }
    async with httpx.AsyncClient() as http:
        (await http.post(f"{sim_url}/_sim/stock", json=seed)).raise_for_status()
    code, out, _ = await run(capsys, config_file, "pull", "--shop", "cb-taipei")
    doc = tomllib.loads(out)
    assert 0 == code
    assert [
        (
            "cb-taipei-77",
            [{"shop": "cb-taipei", "cyberbiz_group": "77", "variants": ["6001", "6002"]}],
        ),
        ("cb-taipei-88", [{"shop": "cb-taipei", "cyberbiz_group": "88", "variants": ["7001"]}]),
    ] == [(g["id"], g["members"]) for g in doc["sync_groups"]]
    assert "# already configured, in sync group 'mug'" in out


async def test_pull_refuses_unknown_and_non_cyberbiz_shops(
    capsys: pytest.CaptureFixture[str], config_file: Path
) -> None:
    """Exit 2 naming the shop: unknown, or a platform without sync groups."""
    unknown = await run(capsys, config_file, "pull", "--shop", "nope")
    bento = await run(capsys, config_file, "pull", "--shop", "bento-bkk")
    assert (2, 2) == (unknown[0], bento[0])
    assert "unknown shop 'nope'" in unknown[2]
    assert "shop 'bento-bkk' is bentoweb: only Cyberbiz shops have sync groups" in bento[2]


async def test_pull_on_a_shop_without_the_add_on_exits_1_saying_so(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """Cyberbiz answers 422 without the inventory sync group add-on: exit 1, the reason printed."""
    async with running_simulator(
        parse_config(config_text(), {}), no_sync_groups=["cb-taipei"]
    ) as url:
        path = tmp_path / "bridge.toml"
        path.write_text(
            config_text().replace("http://127.0.0.1:9/cb", f"{url}/cyberbiz/cb-taipei"), "utf-8"
        )
        code, out, err = await run(capsys, path, "pull", "--shop", "cb-taipei")
    assert (1, "", True) == (code, out, "inventory sync group add-on" in err)
