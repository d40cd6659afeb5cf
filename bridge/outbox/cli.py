"""``commerce-bridge outbox list|retry|purge``: the operator's view of the outbox.

Each command reads the dsn from the configuration (``--config``, ``BRIDGE_CONFIG`` or
``./bridge.toml``) and runs the schema migrations (idempotent). Errors are raised, and mapped to
exit codes by :mod:`bridge.clitools`: 1 when the operation did not apply, 2 on bad arguments or
configuration.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

from bridge import clitools
from bridge.errors import UsageError
from bridge.outbox.retention import purge_expired
from bridge.outbox.store import OutboxError, OutboxRow, OutboxStore, Status, open_store

ERROR_WIDTH = 60
_DURATION = re.compile(r"(\d+)([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}

Command = Callable[[OutboxStore, argparse.Namespace, float], Awaitable[int]]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``outbox list|retry|purge`` to the ``commerce-bridge`` command line."""
    outbox = subparsers.add_parser("outbox", help="inspect, retry and purge outbox rows")
    commands = outbox.add_subparsers(dest="outbox_command", metavar="COMMAND", required=True)
    common = clitools.CONFIG

    listing = commands.add_parser("list", parents=[common], help="show rows, newest first")
    listing.add_argument("--status", choices=[s.value for s in Status])
    listing.add_argument("--shop", metavar="SHOP")
    listing.add_argument("--limit", type=positive_int, default=50, metavar="N")
    listing.set_defaults(func=cmd_list)

    retry = commands.add_parser(
        "retry", parents=[common], help="send dead rows again (ends their shops' Retry-After wait)"
    )
    which = retry.add_mutually_exclusive_group(required=True)
    which.add_argument("id", nargs="?", type=positive_int, metavar="ID", help="one dead row")
    which.add_argument("--all-dead", action="store_true", help="every dead row (of --shop)")
    retry.add_argument("--shop", metavar="SHOP", help="with --all-dead: only this shop")
    retry.set_defaults(func=cmd_retry)

    purge = commands.add_parser(
        "purge",
        parents=[common],
        help="delete finished rows (the relay also does, past outbox.retention)",
    )
    purge.add_argument(
        "--older-than",
        type=parse_duration,
        metavar="AGE",
        help="e.g. 7d, 12h, 1d12h: done/dead/superseded rows last updated before now - AGE "
        "(default: the configured outbox.retention)",
    )
    purge.set_defaults(func=cmd_purge)


# -- argument types ---------------------------------------------------------------------------


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def parse_duration(text: str) -> timedelta:
    """``45s``, ``30m``, ``12h``, ``7d`` or a sum such as ``1d12h``."""
    compact = text.strip().lower()
    if not compact or _DURATION.sub("", compact):
        raise argparse.ArgumentTypeError(
            f"expected a duration such as 45s, 30m, 12h, 7d or 1d12h, got {text!r}"
        )
    seconds = sum(int(n) * _UNITS[unit] for n, unit in _DURATION.findall(compact))
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"the duration must be longer than zero, got {text!r}")
    return timedelta(seconds=seconds)


# -- commands ---------------------------------------------------------------------------------


def cmd_list(args: argparse.Namespace) -> int:
    return _run(args, _list)


def cmd_retry(args: argparse.Namespace) -> int:
    if args.shop is not None and not args.all_dead:
        raise UsageError("outbox retry: --shop applies only with --all-dead")
    return _run(args, _retry)


def cmd_purge(args: argparse.Namespace) -> int:
    if args.older_than is None:
        retention = clitools.load(args).outbox.retention
        if retention <= 0:
            raise UsageError(
                "outbox purge: give --older-than AGE (outbox.retention is 0: rows are kept)"
            )
        args.older_than = timedelta(seconds=retention)
    return _run(args, _purge)


async def _list(store: OutboxStore, args: argparse.Namespace, now: float) -> int:
    status = None if args.status is None else Status(args.status)
    rows = await store.list_rows(status=status, shop=args.shop, limit=args.limit)
    write(format_rows(rows, now))
    return 0


async def _retry(store: OutboxStore, args: argparse.Namespace, now: float) -> int:
    if args.all_dead:
        count = await store.retry_all_dead(now, shop=args.shop)
        write(f"{count} dead row{'s' if count != 1 else ''} back to pending\n")
        return 0
    if await store.retry(args.id, now):
        write(f"row {args.id} is pending again\n")
        return 0
    row = await store.get(args.id)
    if row is None:
        reason = "no such row"
    elif row.status is not Status.DEAD:
        reason = f"it is {row.status.value}, only dead rows can be retried"
    else:
        reason = f"a newer {row.kind} for {row.shop} {row.target} replaced it"
    raise OutboxError(f"outbox retry: row {args.id} not retried: {reason}")


async def _purge(store: OutboxStore, args: argparse.Namespace, now: float) -> int:
    count = await purge_expired(store, args.older_than.total_seconds(), now)
    cutoff = datetime.fromtimestamp(int(now - args.older_than.total_seconds()), UTC)
    plural = "s" if count != 1 else ""
    write(f"purged {count} finished row{plural} last updated before {cutoff.isoformat()}\n")
    return 0


def _run(args: argparse.Namespace, command: Command) -> int:
    dsn = clitools.load(args).outbox.dsn
    return asyncio.run(_with_store(dsn, args, command))


async def _with_store(dsn: str, args: argparse.Namespace, command: Command) -> int:
    store = await open_store(dsn)
    try:
        await store.migrate()
        return await command(store, args, time.time())
    finally:
        await store.close()


# -- output -----------------------------------------------------------------------------------

HEADERS = ("ID", "SHOP", "KIND", "TARGET", "STATUS", "ATTEMPTS", "NEXT ATTEMPT", "LAST ERROR")
RIGHT_ALIGNED = {0, 5}


def write(text: str) -> None:
    """The CLI's only output channel (the package never prints)."""
    sys.stdout.write(text)


def relative(when: float, now: float) -> str:
    """``in 5s``, ``3m ago``, ``now``."""
    delta = when - now
    if abs(delta) < 1:
        return "now"
    span = abs(delta)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if span >= size:
            amount = f"{int(span // size)}{unit}"
            break
    else:
        amount = f"{int(span)}s"
    return f"in {amount}" if delta > 0 else f"{amount} ago"


def _next_attempt(row: OutboxRow, now: float) -> str:
    if row.status is Status.PENDING:
        return relative(row.next_attempt_at, now)
    if row.status is Status.IN_FLIGHT and row.lease_until is not None:
        return f"lease ends {relative(row.lease_until, now)}"
    return "-"


def _truncate(text: str | None, width: int = ERROR_WIDTH) -> str:
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[: width - 1] + "…"


def format_rows(rows: Sequence[OutboxRow], now: float) -> str:
    """An aligned text table, one line per row."""
    if not rows:
        return "no rows\n"
    cells = [
        (str(r.id), r.shop, r.kind, r.target, r.status.value, str(r.attempts),
         _next_attempt(r, now), _truncate(r.last_error))
        for r in rows
    ]  # fmt: skip
    widths = [max(len(line[i]) for line in [HEADERS, *cells]) for i in range(len(HEADERS))]
    lines = []
    for line in [HEADERS, *cells]:
        padded = [
            cell.rjust(width) if i in RIGHT_ALIGNED else cell.ljust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines) + "\n"
