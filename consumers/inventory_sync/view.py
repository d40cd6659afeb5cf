"""What ``commerce-bridge sync-groups show`` and ``pull`` print. Pure: values in, text out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from bridge.times import rfc3339
from consumers.inventory_sync.directory import Directory
from consumers.inventory_sync.pool import target
from consumers.inventory_sync.state import GroupState

COLUMNS = ("MEMBER", "SOURCE", "BUFFER", "OBSERVED", "TARGET", "UN-ECHOED", "DRIFT", "CHANGED")


def _time(at: float | None) -> str | None:
    return None if at is None else rfc3339(datetime.fromtimestamp(at, UTC), "milliseconds")


def group_view(directory: Directory, state: GroupState) -> dict[str, Any]:
    """One group as plain JSON: pool, last change, and every member's state."""
    last = state.last_change
    members = []
    for member in directory.groups[state.group]:
        m = state.member(member.key)
        members.append(
            {
                "member": member.key,
                "shop": member.shop,
                "target": member.target_key,
                "source": "orders" if member.orders else "levels",
                "buffer": m.buffer,
                "observed": m.observed,
                "target_level": target(state, member.key),
                "unechoed": [
                    {"value": p.value, "outbox_id": p.outbox_id, "at": _time(p.at)}
                    for p in m.pending
                ],
                "last_change_at": _time(m.last_change_at),
                "drift": m.drift_count,
            }
        )
    return {
        "group": state.group,
        "pool": state.pool,
        "oversold": state.pool is not None and state.pool < 0,
        "last_change": None
        if last is None
        else {"at": _time(last.at), "member": last.member, "delta": last.delta, "kind": last.kind},
        "members": members,
    }


def render_table(views: Sequence[Mapping[str, Any]], now: float) -> str:
    """A readable table per group; ``now`` turns times into ages."""
    if not views:
        return "no sync groups configured ([[sync_groups]] in bridge.toml)\n"
    out: list[str] = []
    for view in views:
        pool = "none (no level seen yet)" if view["pool"] is None else str(view["pool"])
        if view["oversold"]:
            pool += "  OVERSOLD"
        out.append(f"sync group {view['group']}  pool {pool}  {_last(view['last_change'], now)}")
        rows = [COLUMNS] + [_row(m, now) for m in view["members"]]
        widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
        out += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                for r in rows]  # fmt: skip
        out.append("")
    return "\n".join(out)


def _row(m: Mapping[str, Any], now: float) -> tuple[str, ...]:
    unechoed = ", ".join(f"{p['value']} (#{p['outbox_id']})" for p in m["unechoed"]) or "-"
    return (
        m["member"],
        m["source"],
        str(m["buffer"]),
        _opt(m["observed"]),
        _opt(m["target_level"]),
        unechoed,
        str(m["drift"]),
        _age(m["last_change_at"], now),
    )


def _last(last: Mapping[str, Any] | None, now: float) -> str:
    if last is None:
        return "last change: never"
    who = last["member"] or "recount"
    return f"last change: {last['kind']} {last['delta']:+d} by {who}, {_age(last['at'], now)}"


def _opt(value: int | None) -> str:
    return "-" if value is None else str(value)


def _age(at: str | None, now: float) -> str:
    if at is None:
        return "-"
    seconds = max(0.0, now - datetime.fromisoformat(at).timestamp())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{at} ({int(seconds // size)}{unit} ago)"
    return f"{at} ({int(seconds)}s ago)"


def render_toml(
    shop: str,
    field: str,
    groups: Sequence[tuple[str, Sequence[str]]],
    configured: Mapping[str, str],
) -> str:
    """A shop's own sync groups as ``[[sync_groups]]`` tables to complete; ``field`` names them."""
    lines = [
        f"# The sync groups of shop {shop!r} (commerce-bridge sync-groups pull).",
        "# Each group needs the members of the other shops that sell the same goods.",
    ]
    if not groups:
        lines.append("# (the shop has no inventory sync groups)")
    for group_id, variants in groups:
        lines.append("")
        if group_id in configured:
            lines.append(f"# already configured, in sync group {configured[group_id]!r}")
        listed = ", ".join(_quote(v) for v in variants)
        lines += [
            "[[sync_groups]]",
            f"id = {_quote(f'{shop}-{group_id}')}",
            "members = [",
            f"  {{ shop = {_quote(shop)}, {field} = {_quote(group_id)}, variants = [{listed}] }},",
            '  # { shop = "other-shop", variant = "…" },',
            "]",
        ]
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    """A TOML basic string."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(c if c >= " " else f"\\u{ord(c):04x}" for c in escaped) + '"'
