"""Ingress benchmark: ~5.7 KB BentoWeb order webhooks over HTTP, through the ingress, into Kafka.

    .venv/bin/python bench/ingress.py [--quick] [--duration S] [--concurrency 8,64] [--profile]

Starts a local Kafka broker (or uses ``KAFKA_BOOTSTRAP_SERVERS``) and the ingress as its own
process (``python -m bridge --log-level info --log-format json ingress``: production settings,
every feature on — normalisation, PII encryption, dedup, metrics, logs), and measures in the same
run, each as its own process under the same uvicorn set-up: (a) a bare Starlette endpoint that
only reads the body and answers 202 — also the load generator's ceiling —, (b) a raw aiokafka
producer (``acks=all``, idempotent, same linger) sending the ingress's records with the same
concurrency, and (c) the *minimal ingress*: the bare stack reading the body, checking the token
header and awaiting ``send_and_wait`` before answering 202. Every webhook is a distinct delivery
(fresh order id and ``date_modified``), so the ingress publishes each one; at the end the records
on each topic are counted against the 202s. ``--profile`` adds a py-spy profile of (a), (c) and
the ingress at the highest concurrency: CPU µs per request by area. Report (markdown) on stdout,
progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from cpu import CpuMeter, area_breakdown, find_py_spy, profile_summary
from ingress_plan import HOST, NAMES, SHOP, TARGETS, Plan, Results, Target, config_text, load
from ingress_report import goals, report
from ingress_workers import WORKERS
from loadgen import LoadResult, merge
from procs import Child, http_get, log, prometheus_samples, run_workers, wait_http
from report import add_json_flag, load_average, machine_facts, uptime, write_summary
from samples import ID_BASE, SignedRequests, bento_order_template
from wrk import WRK_INSTALL_HINT, run_wrk, wrk_script

from bridge.config import Config
from bridge.serve import free_port


class Bench:
    def __init__(self, plan: Plan, tmp: Path, stack: contextlib.ExitStack) -> None:
        self.plan = plan
        self.tmp = tmp
        self.stack = stack
        self.results = Results()
        self.wrk = None if plan.python_client else shutil.which("wrk")
        self.kafka_pid: int | None = None
        self.bootstrap = ""
        self.here = str(Path(__file__).resolve())
        self.children: list[Child] = []
        self._block = 0

    def next_ids(self) -> int:
        """A fresh block of order ids: no two requests of a run are the same delivery."""
        self._block += 1
        return ID_BASE + self._block * 1_000_000_000

    def start_kafka(self) -> None:
        if external := os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
            self.bootstrap = external
            self.results.facts.append(("Kafka", f"external, {external} (version not probed)"))
            return
        from bridge.devtools.kafka.local import LocalKafka

        log("starting a local Kafka broker")
        kafka = LocalKafka(self.tmp / "kafka", progress=sys.stderr)
        self.stack.callback(kafka.stop)
        self.bootstrap = kafka.start()
        self.kafka_pid = kafka.pid
        fact = f"Apache Kafka {kafka.version}, local single-node KRaft (combined), JVM -Xmx512m"
        self.results.facts.append(("Kafka", fact))

    def write_config(self, name: str, prefix: str) -> Path:
        pii_key = base64.b64encode(os.urandom(32)).decode()
        path = self.tmp / f"{name}.toml"
        path.write_text(config_text(self.bootstrap, prefix, secrets.token_hex(16), pii_key))
        return path

    def start(self, name: str, argv: list[str], config: Path) -> Target:
        port = free_port(HOST)
        ready_port = port
        env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_")}  # our config
        if "ingress" in argv:
            ready_port = free_port(HOST)
            argv = [*argv, "--ops-port", str(ready_port)]
        child = Child(name, [*argv, "--port", str(port)], self.tmp / f"{name}.log", env=env)
        self.stack.callback(child.stop)
        self.children.append(child)
        return Target(name, port, child, config, ready_port)

    def meter(self, target: Target | None) -> CpuMeter:
        return CpuMeter({"server": target.child.pid if target else None, "kafka": self.kafka_pid})

    def client_argv(
        self, target: Target, duration: float, concurrency: int, rate: float
    ) -> list[str]:
        return [
            sys.executable, self.here, "_client", "--config", str(target.config),
            "--port", str(target.port), "--duration", str(duration), "--concurrency",
            str(concurrency), "--rate", str(rate), "--base-id", str(self.next_ids()),
        ]  # fmt: skip

    def closed(self, target: Target, concurrency: int, duration: float) -> LoadResult:
        """Closed loop at ``concurrency`` for ``duration`` s: wrk, or the Python fallback."""
        meter = self.meter(target)
        if self.wrk is not None:
            script = self.tmp / f"{target.name}.lua"
            if not script.exists():
                shop = load(target.config).shops[SHOP]
                signer = SignedRequests(shop, f"{HOST}:{target.port}", bento_order_template())
                script.write_text(wrk_script(signer))
            url = f"http://{HOST}:{target.port}/"
            meter.start()
            threads, ids = self.plan.wrk_threads, self.next_ids()
            result = run_wrk(self.wrk, script, url, concurrency, duration, threads, ids)
            result.cpu = meter.stop()
            target.abandoned += concurrency
        else:
            split = (
                [concurrency // 2 + concurrency % 2, concurrency // 2] if concurrency > 1 else [1]
            )
            argvs = [self.client_argv(target, duration, c, 0) for c in split]
            answers, cpu = run_workers(argvs, meter)
            result = merge(answers)
            result.cpu = cpu
        target.seen_202 += result.count(202)
        return result

    def raw(self, config: Path, topic: str, concurrency: int) -> tuple[LoadResult, int]:
        argv = [sys.executable, self.here, "_raw", "--config", str(config), "--topic", topic]
        argv += ["--concurrency", str(concurrency), "--duration", str(self.plan.duration)]
        answers, cpu = run_workers([argv], self.meter(None))
        result = merge(answers)
        result.cpu = {"server": cpu.pop("client"), **cpu}  # the producer is what is measured
        return result, int(answers[0]["warmup"])

    def paced(self, target: Target) -> tuple[LoadResult, str]:
        """Open loop at ``plan.rate``; also the ingress's own Kafka-ack p99 meanwhile."""
        metrics = f"http://{HOST}:{target.ready_port}/metrics"
        measured = target.name.startswith("ingress")  # the baselines have no /metrics
        before = _ack_buckets(metrics) if measured else {}
        argv = self.client_argv(target, self.plan.paced_seconds, 0, self.plan.rate)
        answers, cpu = run_workers([argv], self.meter(target))
        result = LoadResult(**answers[0])
        result.statuses = {int(k): v for k, v in result.statuses.items()}
        result.cpu = cpu
        target.seen_202 += result.count(202)
        if not measured:
            return result, "-"
        after = _ack_buckets(metrics)
        delta = {le: after[le] - before.get(le, 0.0) for le in sorted(after)}
        total = delta.get(float("inf"), 0.0)
        bound = next((le for le, n in delta.items() if total and n >= 0.99 * total), float("nan"))
        return result, f"≤ {bound * 1000:g}"

    def profile(self, targets: dict[str, Target]) -> None:
        """py-spy on (a), (c) and the ingress at the highest concurrency: µs/request by area."""
        py_spy = find_py_spy()
        if py_spy is None:
            self.results.profile = ["py-spy not found: `.venv/bin/pip install -e '.[bench]'`"]
            return
        concurrency, seconds, rate = max(self.plan.concurrency), self.plan.duration, 250
        folder = self.plan.profile_dir or self.tmp
        folder.mkdir(parents=True, exist_ok=True)
        head = [
            f"py-spy record --rate {rate} --nonblocking --format raw, c={concurrency}, "
            f"{seconds:g} s per target, a cell of its own (not the cells above).",
            "",
        ]
        for name in ("bare", "minimal", "ingress"):
            target = targets[name]
            out = folder / f"{name}.pyspy"
            log(f"profiling {name} at c={concurrency} with py-spy")
            spy = [py_spy, "record", "--pid", str(target.child.pid), "--rate", str(rate)]
            spy += ["--nonblocking", "--format", "raw", "-o", str(out)]
            spy += ["--duration", f"{seconds:.0f}"]
            with subprocess.Popen(spy, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) as proc:
                result = self.closed(target, concurrency, seconds)
                _, err = proc.communicate(timeout=seconds + 30)
            if not out.exists():
                error = err.decode(errors="replace").strip()[-300:]
                self.results.profile = [f"py-spy failed on {name}: {error}"]
                return
            self.results.areas[name] = (result, area_breakdown(out))
            if name == "ingress":
                head += [f"The ingress under py-spy: {result.rate:,.0f} req/s.", ""]
                head += profile_summary(out, rate, seconds)
        self.results.profile = head

    def run(self) -> Results:
        plan = self.plan
        if self.wrk is None:
            why = "--python-client" if plan.python_client else WRK_INSTALL_HINT
            log(f"{why}; falling back to two Python client processes")
            self.results.notes.append(
                f"{why}. Load generator: two Python client processes (uvloop); they need far more "
                "CPU per request than wrk on the same cores, so the rates are lower bounds."
            )
        self.start_kafka()
        run_id = secrets.token_hex(3)
        configs = {"ingress": self.write_config("ingress", f"bench-{run_id}")}
        if plan.warning_level:
            configs["ingress-warning"] = self.write_config("warning", f"bench-{run_id}-warning")
        raw_topic, minimal_topic = f"bench-{run_id}-raw.orders", f"bench-{run_id}-minimal.orders"
        from bridge.kafka.topics import ensure_topics

        for path in configs.values():
            asyncio.run(ensure_topics(load(path).kafka))
        names = [raw_topic, minimal_topic]
        asyncio.run(ensure_topics(load(configs["ingress"]).kafka, names=names))

        here, main = [sys.executable, self.here], configs["ingress"]
        targets = {
            "bare": self.start("bare", [*here, "_bare"], main),
            "minimal": self.start(
                "minimal",
                [*here, "_minimal", "--config", str(main), "--topic", minimal_topic],
                main,
            ),
        }
        for name, level in (("ingress", "info"), ("ingress-warning", "warning")):
            if name in configs:
                bridge = [sys.executable, "-m", "bridge", "--log-level", level, "--log-format"]
                argv = [*bridge, "json", "ingress", "--host", HOST, "--config", str(configs[name])]
                targets[name] = self.start(name, argv, configs[name])
        for target in targets.values():
            wait_http(f"http://{HOST}:{target.ready_port}/readyz", target.child.alive)
            self.closed(target, 32, plan.warmup)  # JVM, connections, allocator; counted below

        raw_sent = 0
        for concurrency in plan.concurrency:
            for name in TARGETS:
                if name == "raw":
                    log(f"c={concurrency}: raw aiokafka producer")
                    result, warm = self.raw(main, raw_topic, concurrency)
                    raw_sent += result.count(202) + warm
                elif name in targets:
                    log(f"c={concurrency}: {name}")
                    result = self.closed(targets[name], concurrency, plan.duration)
                else:
                    continue
                self.results.closed[name, concurrency] = result
                log(f"  {result.rate:,.0f}/s, p50 {result.p50:.1f} ms, p99 {result.p99:.1f} ms")
        for name, target in targets.items():
            log(f"{name}: {plan.rate:g}/s, open loop, {plan.paced_seconds:g} s")
            self.results.paced[name] = self.paced(target)
        if plan.profile:
            self.profile(targets)
        ours = [t for n, t in targets.items() if n.startswith("ingress")]
        self.verify(ours, targets["minimal"], (raw_topic, raw_sent), minimal_topic)
        return self.results

    def verify(
        self, targets: list[Target], minimal: Target, raw: tuple[str, int], minimal_topic: str
    ) -> None:
        """Records on each orders topic == the 202s the ingress answered == what clients saw."""
        for target in targets:
            config = load(target.config)
            topic = f"{config.kafka.topic_prefix}.orders"
            counters = _wait_idle(f"http://{HOST}:{target.ready_port}/metrics")
            records = asyncio.run(topic_records(config, topic))
            accepted = int(counters.get("bridge_webhooks_accepted_total", 0))
            others = {
                name.removeprefix("bridge_webhooks_").removesuffix("_total"): int(value)
                for name, value in counters.items()
                if name in ("bridge_webhooks_duplicate_total", "bridge_webhooks_rejected_total")
                and value
            }
            unseen = accepted - target.seen_202
            ok = records == accepted and 0 <= unseen <= target.abandoned and not others
            self.results.checks.append((
                NAMES[target.name], topic, f"{records:,}", f"{accepted:,}",
                f"{target.seen_202:,}", f"{unseen} (≤ {target.abandoned})",
                str(others or "none"), "PASS" if ok else "**FAIL**",
            ))  # fmt: skip
        config = load(minimal.config)
        records = asyncio.run(topic_records(config, minimal_topic))
        unseen = records - minimal.seen_202
        self.results.checks.append((
            NAMES["minimal"], minimal_topic, f"{records:,}", "-", f"{minimal.seen_202:,}",
            f"{unseen} (≤ {minimal.abandoned})", "-",
            "PASS" if 0 <= unseen <= minimal.abandoned else "**FAIL**",
        ))  # fmt: skip
        raw_topic, raw_sent = raw
        records = asyncio.run(topic_records(config, raw_topic))
        self.results.checks.append((
            NAMES["raw"], raw_topic, f"{records:,}", f"{raw_sent:,} acked", "-", "-", "-",
            "PASS" if records == raw_sent else "**FAIL**",
        ))  # fmt: skip


def _ack_buckets(url: str) -> dict[float, float]:
    """The ingress's publish-latency histogram: {upper bound s: cumulative count}."""
    buckets: dict[float, float] = {}
    for name, labels, value in prometheus_samples(http_get(url)):
        if name == "bridge_publish_seconds_bucket":
            le = float(labels["le"])
            buckets[le] = buckets.get(le, 0.0) + value
    return buckets


def _wait_idle(url: str, timeout: float = 15.0) -> dict[str, float]:
    """Counters summed over labels, once no request is in flight (wrk stops mid-request)."""
    deadline = time.monotonic() + timeout
    while True:
        totals: dict[str, float] = {}
        for name, _labels, value in prometheus_samples(http_get(url)):
            totals[name] = totals.get(name, 0.0) + value
        if totals.get("bridge_webhooks_in_flight", 0) == 0 or time.monotonic() > deadline:
            return totals
        time.sleep(0.2)


async def topic_records(config: Config, topic: str) -> int:
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from bridge.kafka.topics import client_options

    consumer = AIOKafkaConsumer(topic, **client_options(config.kafka), enable_auto_commit=False)
    await consumer.start()  # subscribed, without a group: the topic's metadata is loaded
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            raise RuntimeError(f"topic {topic} has no partitions")
        end = await consumer.end_offsets(partitions)
        begin = await consumer.beginning_offsets(partitions)
        return sum(end[tp] - begin[tp] for tp in partitions)
    finally:
        await consumer.stop()


def parse_args(argv: Sequence[str]) -> Plan:
    p = argparse.ArgumentParser(
        prog="bench/ingress.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--quick", action="store_true", help="smoke run, under a minute")
    p.add_argument("--duration", type=float, help="seconds per cell (default 15; quick 5)")
    p.add_argument("--concurrency", help="comma-separated (default 8,64; quick 64)")
    p.add_argument("--rate", type=float, default=500.0, help="fixed-rate run, req/s (500)")
    p.add_argument("--paced-seconds", type=float, help="fixed-rate duration (20; quick 4)")
    p.add_argument("--warning", action="store_true", help="also the ingress at log level warning")
    p.add_argument("--wrk-threads", type=int, default=2, help="wrk threads (default 2)")
    p.add_argument("--python-client", action="store_true", help="Python load generator, not wrk")
    p.add_argument("--profile", action="store_true", help="py-spy profiles, CPU µs/req by area")
    p.add_argument("--profile-dir", type=Path, help="keep py-spy's raw stacks there (NAME.pyspy)")
    add_json_flag(p)
    args = p.parse_args(argv)
    concurrency = args.concurrency or ("64" if args.quick else "8,64")
    return Plan(
        concurrency=[int(c) for c in concurrency.split(",") if c.strip()],
        duration=args.duration or (5.0 if args.quick else 15.0),
        rate=args.rate,
        paced_seconds=args.paced_seconds or (4.0 if args.quick else 20.0),
        warmup=1.0 if args.quick else 5.0,
        warning_level=args.warning,
        wrk_threads=args.wrk_threads,
        python_client=args.python_client,
        profile=args.profile or args.profile_dir is not None,
        profile_dir=args.profile_dir,
        json=args.json,
    )


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in WORKERS:
        p = argparse.ArgumentParser(prog=f"bench/ingress.py {argv[0]}")
        for option in ("--config", "--topic"):
            p.add_argument(option)
        for option in ("--port", "--concurrency", "--base-id"):
            p.add_argument(option, type=int, default=0)
        for option in ("--duration", "--rate"):
            p.add_argument(option, type=float, default=0.0)
        return WORKERS[argv[0]](p.parse_args(argv[1:]))
    plan = parse_args(argv)
    for sig in (signal.SIGINT, signal.SIGTERM):  # also when started with SIGINT ignored (`&`)
        signal.signal(sig, _interrupt)
    command = " ".join([".venv/bin/python", "bench/ingress.py", *argv])
    up, before = uptime(), load_average()
    log(up)
    started = time.monotonic()
    try:
        # The stack exits first: every process stops before the temporary directory goes.
        with (
            tempfile.TemporaryDirectory(prefix="bench-ingress-") as tmp,
            contextlib.ExitStack() as stack,
        ):
            bench = Bench(plan, Path(tmp), stack)
            bench.results.facts.extend(machine_facts())
            if bench.wrk:
                done = subprocess.run([bench.wrk, "-v"], capture_output=True, text=True)
                bench.results.facts.append(("wrk", done.stdout.split(" Copyright")[0]))
            try:
                results = bench.run()
            except Exception:
                for child in bench.children:
                    log(f"{child.name} log tail:\n{child.tail()}")
                raise
    except KeyboardInterrupt:
        log("interrupted; every process stopped")
        return 130
    results.facts.append(("wall time", f"{time.monotonic() - started:.0f} s"))
    after = load_average()
    sys.stdout.write(report(plan, results, command, (up, before, after)))
    rows = [{"row": row, "goal": goal, "measured": measured, "ratio": met}
            for row, goal, measured, met in goals(plan, results)]  # fmt: skip
    write_summary(plan.json, "ingress", rows, load_before=before, load_after=after)
    return 0


if __name__ == "__main__":
    sys.exit(main())
