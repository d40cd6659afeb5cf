"""`commerce-bridge outbox list|retry|purge` against a real SQLite outbox."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from bridge import clitools
from bridge.outbox import OutboxRow, OutboxStore, Status, open_store
from bridge.outbox.cli import format_rows, parse_duration, register, relative
from tests.outbox.helpers import T0, add, write


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="commerce-bridge")
    register(root.add_subparsers(dest="command", required=True))
    return root


async def run(*argv: str) -> int:
    """Parse and run a command as `commerce-bridge` would (in a thread: the command owns its loop)."""
    args = parser().parse_args(list(argv))
    code: int = await asyncio.to_thread(clitools.invoke, args.func, args)
    return code


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("BRIDGE_OUTBOX_DSN", raising=False)
    path = tmp_path / "bridge.toml"
    dsn = f"sqlite:///{tmp_path / 'outbox.db'}"
    path.write_text(f'[outbox]\ndsn = "{dsn}"\n\n[privacy]\nmode = "passthrough"\n')
    return str(path)


@pytest.fixture
async def store(config: str, tmp_path: Path) -> AsyncIterator[OutboxStore]:
    opened = await open_store(f"sqlite:///{tmp_path / 'outbox.db'}")
    await opened.migrate()
    yield opened
    await opened.close()


async def dead_row(store: OutboxStore, key: str, target: str, shop: str = "shop-a") -> int:
    (result,) = await add(store, write(target, key, shop=shop))
    await store.claim(shop, "relay", 10, 30.0, T0)
    await store.mark_dead(result.id, "relay", "HTTP 404 Not Found: variant gone", T0)
    return result.id


async def test_list_prints_an_aligned_table(
    store: OutboxStore, config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """list shows one aligned line per row under a header, filtered by status."""
    dead = await dead_row(store, "k1", "variant:1")
    await add(store, write("variant:2", "k2"))
    assert 0 == await run("outbox", "list", "--config", config, "--status", "dead")
    lines = capsys.readouterr().out.splitlines()
    assert 2 == len(lines)
    assert lines[0].split() == ["ID", "SHOP", "KIND", "TARGET", "STATUS", "ATTEMPTS", "NEXT",
                                "ATTEMPT", "LAST", "ERROR"]  # fmt: skip
    assert [str(dead), "shop-a", "set_stock", "variant:1", "dead", "1", "-"] == lines[1].split()[:7]
    assert lines[0].index("STATUS") == lines[1].index("dead")


async def test_retry_one_row(
    store: OutboxStore, config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """retry ID revives a dead row; retrying it again fails with the reason, exit 1."""
    dead = await dead_row(store, "k1", "variant:1")
    assert 0 == await run("outbox", "retry", str(dead), "--config", config)
    assert f"row {dead} is pending again\n" == capsys.readouterr().out
    assert 1 == await run("outbox", "retry", str(dead), "--config", config)
    assert "it is pending, only dead rows can be retried" in capsys.readouterr().err
    row = await store.get(dead)
    assert row is not None
    assert Status.PENDING == row.status


async def test_retry_all_dead_of_one_shop(
    store: OutboxStore, config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """retry --all-dead --shop revives only that shop's dead rows."""
    await dead_row(store, "a1", "variant:1", shop="shop-a")
    await dead_row(store, "b1", "variant:1", shop="shop-b")
    assert 0 == await run("outbox", "retry", "--all-dead", "--shop", "shop-b", "--config", config)
    assert "1 dead row back to pending\n" == capsys.readouterr().out
    assert {("shop-a", "dead"): 1, ("shop-b", "pending"): 1} == await store.counts()


async def test_purge_older_than(
    store: OutboxStore, config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """purge --older-than removes finished rows older than the window (real clock: T0 is old)."""
    await dead_row(store, "k1", "variant:1")
    await add(store, write("variant:2", "k2"))
    assert 0 == await run("outbox", "purge", "--older-than", "7d", "--config", config)
    assert capsys.readouterr().out.startswith("purged 1 finished row last updated before ")
    assert [Status.PENDING] == [r.status for r in await store.list_rows()]


async def test_retry_shop_without_all_dead_is_a_usage_error(
    config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """--shop without --all-dead exits 2 with a message."""
    assert 2 == await run("outbox", "retry", "5", "--shop", "shop-a", "--config", config)
    assert "--shop applies only with --all-dead" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["retry"], "one of the arguments ID --all-dead is required"),
        (["retry", "3", "--all-dead"], "not allowed with argument"),
        (["retry", "x"], "expected a positive integer"),
        (["purge", "--older-than", "7"], "expected a duration such as 45s"),
        (["purge", "--older-than", "0d"], "longer than zero"),
        (["list", "--status", "lost"], "invalid choice"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Malformed arguments stop argparse with exit status 2 and say what is wrong."""
    with pytest.raises(SystemExit) as exit_info:
        parser().parse_args(["outbox", *argv])
    assert 2 == exit_info.value.code
    assert message in capsys.readouterr().err


async def test_bad_config_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing or invalid configuration file is reported with exit status 2."""
    assert 2 == await run("outbox", "list", "--config", str(tmp_path / "missing.toml"))
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("45s", 45), ("30m", 1800), ("12h", 43200), ("7d", 604800), ("1d12h", 129600), ("2D", 172800)],
)
def test_parse_duration(text: str, seconds: int) -> None:
    """Durations are a number plus s/m/h/d, optionally summed."""
    assert timedelta(seconds=seconds) == parse_duration(text)


@pytest.mark.parametrize(
    ("offset", "text"),
    [(0.4, "now"), (5, "in 5s"), (-90, "1m ago"), (7200, "in 2h"), (-3 * 86400, "3d ago")],
)
def test_relative_times(offset: float, text: str) -> None:
    """Times are shown relative to now, in the largest whole unit."""
    assert text == relative(T0 + offset, T0)


def test_format_rows_truncates_errors_and_shows_leases() -> None:
    """The table flattens and truncates long errors and shows when an in-flight lease ends."""
    row = OutboxRow(
        id=7, shop="cb-taipei", kind="set_stock", target="variant:5001", payload={},
        idempotency_key="k", status=Status.IN_FLIGHT, attempts=3, next_attempt_at=T0,
        last_error="HTTP 503\n" + "x" * 100, created_at=T0, updated_at=T0, supersedes=None,
        lease_owner="relay", lease_until=T0 + 20, done_at=None,
    )  # fmt: skip
    line = format_rows([row], T0).splitlines()[1]
    assert "lease ends in 20s" in line
    assert line.endswith("HTTP 503 " + "x" * 50 + "…")
    assert "no rows\n" == format_rows([], T0)


async def test_purge_without_older_than_uses_the_configured_retention(
    store: OutboxStore, config: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """purge alone applies outbox.retention (default 7 days; T0 is older)."""
    await dead_row(store, "k1", "variant:1")
    assert 0 == await run("outbox", "purge", "--config", config)
    assert capsys.readouterr().out.startswith("purged 1 finished row last updated before ")
    assert [] == await store.list_rows()


async def test_purge_without_older_than_and_retention_zero_is_a_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With outbox.retention = 0 there is no default age: exit 2, saying what to give."""
    path = tmp_path / "keep.toml"
    dsn = f"sqlite:///{tmp_path / 'keep.db'}"
    path.write_text(f'[outbox]\ndsn = "{dsn}"\nretention = 0\n[privacy]\nmode = "redact"\n')
    assert 2 == await run("outbox", "purge", "--config", str(path))
    assert "give --older-than AGE" in capsys.readouterr().err
