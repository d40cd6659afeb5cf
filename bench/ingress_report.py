"""The ingress benchmark's markdown report: cells, ratios, fixed rate, goals, checks, ceiling."""

from __future__ import annotations

from ingress_plan import NAMES, Plan, Results
from loadgen import LoadResult
from report import table

GOAL_RATE, GOAL_P99_MS, GOAL_BARE_SHARE = 2000.0, 50.0, 0.5  # issue 3, item 9


def _n(value: float, spec: str = ",.0f") -> str:
    return "-" if value != value else format(value, spec)  # nan → "-"


def _cpu(r: LoadResult) -> str:
    ours = [r.cpu.get(k, float("nan")) for k in ("server", "kafka", "client")]
    others = r.cpu.get("machine", float("nan")) - sum(v for v in ours if v == v)
    shares = " / ".join(_n(v) for v in [*ours, max(0.0, others)])
    return f"{shares} ({_n(r.cpu_per_request())} µs)"


def report(plan: Plan, results: Results, command: str, load: tuple[str, str, str]) -> str:
    up, before, after = load
    generator = f"wrk, {plan.wrk_threads} thread(s)" if not results.notes else "Python client"
    out = ["# Ingress benchmark", "", f"Command: `{command}`", ""]
    out += [f"Load average before: {before} (`{up}`); after: {after}.", ""]
    out += [
        f"Closed loop ({generator}), {plan.duration:g} s per cell; ~2 KB signed Cyberbiz "
        "`orders/create`, every request a distinct delivery. CPU: % of one core over the cell — "
        "server (process under test) / Kafka broker / load generator / everything else on the "
        "machine (other people's jobs on these shared cores, kernel interrupts) — and, in "
        "brackets, the server's CPU µs per request.",
        "",
    ]
    rows: list[tuple[str, ...]] = [
        (str(c), NAMES[name], _n(r.rate), _n(r.p50, ".1f"), _n(r.p99, ".1f"), f"{r.ok:,}",
         f"{r.non_2xx:,}", str(r.errors), _cpu(r))
        for (name, c), r in results.closed.items()
    ]  # fmt: skip
    header = ["conc.", "target", "req/s", "p50 ms", "p99 ms", "2xx", "non-2xx", "errors"]
    out += table([*header, "CPU % server / kafka / client / others (µs/req)"], rows)
    out += ["", "## Ratios", ""]
    rows = []
    for c in plan.concurrency:
        bare, ingress, raw = (results.closed.get((n, c)) for n in ("bare", "ingress", "raw"))
        info = results.closed.get(("ingress-info", c))
        if bare and ingress and raw:
            info_cell = f"{info.rate:,.0f} ({info.rate / ingress.rate:.0%})" if info else "-"
            rows.append((
                str(c), _n(bare.rate), _n(ingress.rate), f"{ingress.rate / bare.rate:.0%}",
                _n(raw.rate), f"{ingress.rate / raw.rate:.0%}", info_cell,
            ))  # fmt: skip
    out += table(
        ["conc.", "bare req/s", "ingress req/s", "ingress / bare", "raw rec/s", "ingress / raw",
         "ingress at log info (vs warning)"],
        rows,
    )  # fmt: skip
    out += ["", f"## Fixed rate: {plan.rate:g} req/s, open loop, {plan.paced_seconds:g} s", ""]
    out += [
        "Python client (uvloop), latency from each request's intended send time. Kafka ack p99: "
        "the ingress's own publish histogram over the same interval (bucket bound).",
        "",
    ]
    rows = [
        (NAMES[n], _n(r.rate), _n(r.p50, ".1f"), _n(r.p99, ".1f"), _n(r.max, ".1f"), ack,
         f"{r.ok:,}", f"{r.non_2xx:,}", str(r.errors), _cpu(r))
        for n, (r, ack) in results.paced.items()
    ]  # fmt: skip
    header = ["target", "req/s", "p50 ms", "p99 ms", "max ms", "Kafka ack p99 ms", "2xx"]
    out += table(
        [*header, "non-2xx", "errors", "CPU % server / kafka / client / others (µs/req)"], rows
    )
    out += [
        "",
        "## Goals (issue 3, item 9)",
        "",
        *table(["goal", "measured", "met"], goals(plan, results)),
    ]
    out += ["", "## Correctness: records on Kafka vs 202s", ""]
    out += table(
        ["process", "topic", "records", "202s answered (ingress /metrics)", "202s seen by clients",
         "answered, not seen (wrk stops mid-request)", "duplicates / rejections", "check"],
        results.checks,
    )  # fmt: skip
    out += ["", "## Load generator ceiling", "", *ceiling(results)]
    if results.profile:
        out += ["", "## Profile of the ingress", "", *results.profile]
    out += ["", "## Machine", "", *(f"- {k}: {v}" for k, v in results.facts)]
    out += [f"- note: {note}" for note in results.notes]
    return "\n".join(out) + "\n"


def goals(plan: Plan, results: Results) -> list[tuple[str, str, str]]:
    def peak(name: str) -> float:
        return max((r.rate for (n, _), r in results.closed.items() if n == name), default=0.0)

    rows = []
    ingress, bare = peak("ingress"), peak("bare")
    info = f"; at log info {peak('ingress-info'):,.0f}/s" if peak("ingress-info") else ""
    rows.append((
        f">= {GOAL_RATE:,.0f} webhooks/s, one ingress process", f"peak {ingress:,.0f}/s{info}",
        _met(ingress >= GOAL_RATE),
    ))  # fmt: skip
    if bare:
        share = ingress / bare
        rows.append((
            f">= {GOAL_BARE_SHARE:.0%} of the bare endpoint's rate",
            f"{share:.0%} (peak {ingress:,.0f} vs {bare:,.0f}/s)", _met(share >= GOAL_BARE_SHARE),
        ))  # fmt: skip
    for name, (r, _) in results.paced.items():
        if name != "bare":
            ok = r.p99 < GOAL_P99_MS and r.ok == r.completed and not r.errors
            goal = f"p99 < {GOAL_P99_MS:g} ms at {plan.rate:g}/s ({NAMES[name]})"
            rows.append((goal, f"p99 {r.p99:.1f} ms", _met(ok)))
    return rows


def _met(ok: bool) -> str:
    return "yes" if ok else "**no**"


def ceiling(results: Results) -> list[str]:
    bare = [r for (n, _), r in results.closed.items() if n == "bare"]
    ingress = max((r.rate for (n, _), r in results.closed.items() if n == "ingress"), default=0.0)
    if not bare:
        return ["-"]
    top = max(bare, key=lambda r: r.rate)
    client, server = top.cpu.get("client", 0.0), top.cpu.get("server", 0.0)
    lines = [
        f"Fastest bare-endpoint cell: {top.rate:,.0f} req/s; the load generator used {client:.0f}% "
        f"of one core and the bare server {server:.0f}% (two cores in all, shared with Kafka)."
    ]
    if client and ingress:
        most = top.rate * 100 / client
        verdict = (
            "so it is not what limits the ingress"
            if most >= 2 * ingress
            else "too close to the ingress's rate: the ingress numbers are lower bounds"
        )
        lines.append(
            f"The generator would reach ~{most:,.0f} req/s on a core of its own: "
            f"{most / ingress:.1f}x the ingress's peak, {verdict}."
        )
    return lines
