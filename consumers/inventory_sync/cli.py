"""``commerce-bridge sync-groups show|set|pull``: the operator's view of the sync groups.

``show`` prints every configured group's pool and members (a table, or ``--json``); ``set GROUP
QTY`` is a recount: the pool becomes QTY and every member gets a write, in one outbox
transaction; ``pull --shop S`` prints a shop's own sync groups (platforms that have them) in the
``[[sync_groups]]`` format. Exit codes: 0 done, 1 the operation failed (platform API, database),
2 bad arguments or configuration (the error names the bad input).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Coroutine
from typing import Any

import httpx
import orjson

from bridge import clitools, platforms
from bridge.config import Config
from bridge.errors import PlatformError
from bridge.outbox.store import OutboxError, OutboxStore, open_store
from bridge.platforms import client_for
from bridge.targets import GROUP
from consumers.inventory_sync import api, transaction
from consumers.inventory_sync.directory import Directory
from consumers.inventory_sync.pool import recount
from consumers.inventory_sync.view import group_view, render_table, render_toml

Command = Callable[[Config, argparse.Namespace], Coroutine[Any, Any, int]]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``sync-groups show|set|pull`` to the ``commerce-bridge`` command line."""
    parser = subparsers.add_parser("sync-groups", help="inspect and recount inventory sync groups")
    commands = parser.add_subparsers(dest="sync_command", metavar="COMMAND", required=True)
    common = clitools.CONFIG

    show = commands.add_parser("show", parents=[common], help="pool and members of every group")
    show.add_argument("--json", action="store_true", help="one JSON document instead of a table")
    show.set_defaults(func=_runner(cmd_show))

    recount_ = commands.add_parser(
        "set", parents=[common], help="recount: set a group's pool and write it to every member"
    )
    recount_.add_argument("group", metavar="GROUP")
    recount_.add_argument("quantity", type=quantity, metavar="QTY")
    recount_.set_defaults(func=_runner(cmd_set))

    pull = commands.add_parser(
        "pull", parents=[common], help="print a shop's own sync groups as [[sync_groups]]"
    )
    pull.add_argument("--shop", required=True, metavar="SHOP")
    pull.set_defaults(func=_runner(cmd_pull))


def quantity(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"QTY must be a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"QTY must be >= 0, got {value}")
    return value


def _runner(command: Command) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        config = clitools.load(args)
        try:
            return asyncio.run(command(config, args))
        except OutboxError as exc:
            _err(f"outbox: {exc}")
            return 1

    return run


def _err(message: str) -> None:
    sys.stderr.write(f"commerce-bridge sync-groups: {message}\n")


async def _open(config: Config) -> OutboxStore:
    store = await open_store(config.outbox.dsn)
    try:
        await store.migrate()
    except BaseException:
        await store.close()  # an open SQLite connection's thread would keep the process alive
        raise
    return store


async def cmd_show(config: Config, args: argparse.Namespace) -> int:
    directory = Directory.from_config(config)
    store = await _open(config)
    try:
        async with store.transaction() as tx:
            states = await transaction.load_all(tx, directory, directory.groups)
    finally:
        await store.close()
    views = [group_view(directory, states[g]) for g in sorted(states)]
    if args.json:
        sys.stdout.write(orjson.dumps({"groups": views}, option=orjson.OPT_INDENT_2).decode())
        sys.stdout.write("\n")
    else:
        sys.stdout.write(render_table(views, time.time()))
    return 0


async def cmd_set(config: Config, args: argparse.Namespace) -> int:
    directory = Directory.from_config(config)
    if args.group not in directory.groups:
        known = ", ".join(sorted(directory.groups)) or "none configured"
        _err(f"unknown sync group {args.group!r} (known: {known})")
        return 2
    store = await _open(config)
    try:
        now = time.time()
        async with store.transaction() as tx:
            state = await transaction.load(tx, directory, args.group)
            before = state.pool
            state, _ = recount(state, args.quantity, now)
            state, queued = await transaction.queue_writes(tx, directory, state, now)
            await transaction.save(tx, state)
    finally:
        await store.close()
    out = sys.stdout
    out.write(f"sync group {args.group}: pool {before} -> {args.quantity}\n")
    for row in queued:
        note = " (already queued)" if row.duplicate else ""
        out.write(
            f"  queued set_stock {row.shop} {row.target} = {row.quantity}"
            f" (outbox #{row.outbox_id}){note}\n"
        )
    return 0


async def cmd_pull(config: Config, args: argparse.Namespace) -> int:
    shop = config.shops.get(args.shop)
    if shop is None:
        _err(f"unknown shop {args.shop!r} (known: {', '.join(config.shops) or 'none'})")
        return 2
    group_field = _group_field(shop.platform)
    if group_field is None:
        owners = " or ".join(_group_owners()) or "no"
        _err(f"shop {args.shop!r} is {shop.platform}: only {owners} shops have sync groups")
        return 2
    async with httpx.AsyncClient(timeout=config.relay.request_timeout) as http:
        try:
            groups = await api.list_groups(client_for(shop, http), shop.id)
        except PlatformError as exc:
            _err(str(exc))
            return 1
    sys.stdout.write(render_toml(shop.id, group_field, groups, _configured(config, shop.id)))
    return 0


def _group_field(platform: str) -> str | None:
    """The member field naming one of ``platform``'s own sync groups (None: it has none)."""
    fields = platforms.get(platform).targets.fields
    return next((f.name for f in fields if f.kind == GROUP), None)


def _group_owners() -> list[str]:
    fields = platforms.target_codec().fields
    return [o for f in fields if f.kind == GROUP for o in platforms.owners_of(f.name)]


def _configured(config: Config, shop: str) -> dict[str, str]:
    """Platform group id → the [[sync_groups]] id it is a member of already."""
    found: dict[str, Any] = {}
    for member in Directory.from_config(config).members():
        if member.shop == shop and member.platform_group is not None:
            found[member.platform_group] = member.group
    return found
