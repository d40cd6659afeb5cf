"""``commerce-bridge simulate``: arguments, start-up line, graceful SIGTERM, configuration errors."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

import httpx
import pytest

from bridge.devtools.simulator import cli

pytestmark = pytest.mark.timeout(60)


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="commerce-bridge")
    cli.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(["simulate", *argv])


def test_register_adds_simulate_with_defaults() -> None:
    """Without options: loopback, the default port, no faults, the run function."""
    args = parse()
    assert ("127.0.0.1", cli.DEFAULT_PORT, 0.0, None, [], cli.run) == (
        args.host, args.port, args.fail_rate, args.seed, args.no_sync_groups, args.func,
    )  # fmt: skip


def test_register_parses_every_fault_option() -> None:
    """Fault flags, the seed, the webhook target and repeated --no-sync-groups all land."""
    args = parse(
        "--fail-rate", "0.1", "--fail-after-rate", "0.2", "--latency-ms", "5",
        "--latency-jitter-ms", "3", "--429-rate", "0.3", "--seed", "9",
        "--webhooks-to", "http://127.0.0.1:8080", "--no-sync-groups", "a",
        "--no-sync-groups", "b",
    )  # fmt: skip
    assert (0.1, 0.2, 5.0, 3.0, 0.3, 9, "http://127.0.0.1:8080", ["a", "b"]) == (
        args.fail_rate, args.fail_after_rate, args.latency_ms, args.latency_jitter_ms,
        args.rate_429, args.seed, args.webhooks_to, args.no_sync_groups,
    )  # fmt: skip


def test_drop_webhooks_is_parsed() -> None:
    """--drop-webhooks RATE lands as a float; the default drops nothing."""
    assert (0.25, 0.0) == (parse("--drop-webhooks", "0.25").drop_webhooks, parse().drop_webhooks)


def test_out_of_range_drop_rate_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """A drop rate above 1 is refused before anything listens."""
    assert 2 == cli.main(["--drop-webhooks", "1.5", "--port", "0"])
    assert "drop_webhooks" in capsys.readouterr().err


def test_missing_config_file_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """A --config that does not exist is reported on stderr with exit code 2."""
    assert 2 == cli.main(["--config", "/nonexistent/bridge.toml", "--port", "0"])
    assert "does not exist" in capsys.readouterr().err


def test_no_sync_groups_for_an_unknown_shop_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """--no-sync-groups must name a configured Cyberbiz shop."""
    assert 2 == cli.main(["--no-sync-groups", "bento-bkk", "--port", "0"])
    assert "not a configured Cyberbiz shop" in capsys.readouterr().err


def test_out_of_range_fault_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    """A fault rate above 1 is refused before anything listens."""
    assert 2 == cli.main(["--fail-rate", "1.5", "--port", "0"])
    assert "fail_rate" in capsys.readouterr().err


async def test_process_announces_serves_and_exits_0_on_sigterm(tmp_path: Path) -> None:
    """The process prints its URL, answers, and a SIGTERM ends it gracefully with code 0."""
    config = tmp_path / "bridge.toml"
    config.write_text(
        '[privacy]\nmode = "redact"\n\n[[shops]]\nid = "cb-x"\nplatform = "cyberbiz"\n'
        'api_token = "t"\nwebhook_secrets = ["s"]\n',
        encoding="utf-8",
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bridge.devtools.simulator.cli", "--port", "0", "--config", str(config),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(30):
            line = (await proc.stdout.readline()).decode()
        prefix = "simulator listening on "
        assert prefix == line[: len(prefix)], line
        url = line[len(prefix) :].strip()
        async with httpx.AsyncClient(base_url=url) as client:
            stock = (await client.get("/_sim/stock")).json()
        assert {"cb-x": {"variants": {}, "groups": {}}} == stock
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(30):
            code = await proc.wait()
        assert 0 == code
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
