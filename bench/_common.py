"""Shared pieces of the benchmarks: signed webhooks, load generators, child processes, statistics.

Load generators:

* ``wrk`` (compiled; Debian package ``wrk``) with a generated Lua script. Every request is a
  *distinct* delivery: the script builds the order body from a template with a fresh order id and
  ``updated_at`` and signs it with OpenSSL's ``HMAC`` through LuaJIT's FFI (wrk itself links
  libcrypto), so nothing is pre-generated and nothing repeats.
* A small Python HTTP/1.1 client on uvloop: open loop at a fixed rate (latency counted from the
  *intended* send time, so queueing in the server cannot hide), and closed loop for machines
  without ``wrk``.

Workers (``run_workers``) are separate processes that print ``READY``, wait for ``GO`` on stdin,
and answer one JSON line: several of them start measuring at the same moment.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import orjson

from bridge.config import ShopConfig
from bridge.devtools.sign import sign_request

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "bridge" / "data" / "samples"
EVENT = "orders/create"
ID_BASE = 100_000_000_000  # order ids have 12 digits: every body has the same length
STAMP_SENTINEL = "2099-12-31 23:59:59"
TAIPEI_OFFSET = 8 * 3600
WRK_INSTALL_HINT = "wrk not found: install it with `apt-get install wrk` (Debian/Ubuntu)"


def log(message: str) -> None:
    """Progress goes to stderr; stdout is the report."""
    sys.stderr.write(f"[bench] {message}\n")
    sys.stderr.flush()


# -- payloads ------------------------------------------------------------------------------------

# (sku, title, variant title, price, quantity, product id, variant id)
_EXTRA_ITEMS = [
    ("TEE-WHT-L", "Logo tee", "White / L", 590.0, 1, 1001, 5003),
    ("HOOD-GRY-M", "Zip hoodie", "Heather grey / M", 1480.0, 1, 1004, 5020),
    ("SOCK-3P", "Crew socks (3 pairs)", "Mixed", 320.0, 2, 1009, 5061),
    ("TOTE-NAT", "Canvas tote", "Natural", 450.0, 1, 1012, 5080),
    ("MUG-350", "Enamel mug 350 ml", "Black", 380.0, 1, 1015, 5102),
    ("CAP-KHK", "Cap", "Khaki", 600.0, 1, 1002, 5008),
    ("STK-PACK", "Sticker pack", "Assorted", 120.0, 3, 1020, 5140),
]


@dataclass(frozen=True, slots=True)
class OrderTemplate:
    """A compact Cyberbiz ``orders/create`` body split around its order id and ``updated_at``."""

    head: bytes
    middle: bytes
    tail: bytes

    def body(self, order_id: int, updated_at: str) -> bytes:
        parts = (self.head, str(order_id).encode(), self.middle, updated_at.encode(), self.tail)
        return b"".join(parts)


def order_template(target_bytes: int = 2048) -> OrderTemplate:
    """The sample order plus realistic line items, until the body is about ``target_bytes``."""
    order = orjson.loads((SAMPLES / "cyberbiz" / "order.json").read_bytes())
    items: list[dict[str, Any]] = order["line_items"]
    for n, (sku, title, variant, price, qty, product, variant_id) in enumerate(_EXTRA_ITEMS):
        if len(orjson.dumps(order)) >= target_bytes - 150:
            break
        items.append(
            {
                "id": 303 + n,
                "product_id": product,
                "product_variant_id": variant_id,
                "sku": sku,
                "title": title,
                "variant_title": variant,
                "price": price,
                "quantity": qty,
            }
        )
    subtotal = round(sum(i["price"] * i["quantity"] for i in items), 2)
    order["prices"]["total_line_items_price"] = subtotal
    order["prices"]["total_price"] = round(subtotal + order["prices"]["shipping_rate_price"], 2)
    sentinel = ID_BASE * 10 - 1
    order["id"] = sentinel
    order["updated_at"] = STAMP_SENTINEL
    head, rest = orjson.dumps(order).split(str(sentinel).encode(), 1)
    middle, tail = rest.split(STAMP_SENTINEL.encode(), 1)
    return OrderTemplate(head, middle, tail)


def taipei_stamp(now: float) -> str:
    """Cyberbiz's ``YYYY-MM-DD HH:MM:SS``, Taipei time."""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(now + TAIPEI_OFFSET))


class SignedRequests:
    """Distinct ``orders/create`` deliveries as raw HTTP requests, signed like ``commerce-bridge
    sign``."""

    def __init__(self, shop: ShopConfig, host: str, template: OrderTemplate) -> None:
        self.shop = shop
        self.host = host
        self.template = template

    def build(self, order_id: int, now: float) -> bytes:
        body = self.template.body(order_id, taipei_stamp(now))
        suffix, headers = sign_request(self.shop, body, EVENT, now)
        lines = [f"POST /webhooks/{self.shop.id}{suffix} HTTP/1.1", f"Host: {self.host}"]
        lines += [f"Content-Length: {len(body)}", *(f"{k}: {v}" for k, v in headers.items())]
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


# -- results -------------------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (values in any order); ``nan`` when there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = math.ceil(q / 100 * len(ordered)) - 1
    return ordered[max(0, min(len(ordered) - 1, rank))]


@dataclass(slots=True)
class LoadResult:
    """One measured cell; latencies in milliseconds, CPU as % of one core per component."""

    completed: int
    seconds: float
    statuses: dict[int, int]
    errors: int  # connect/read/write errors and timeouts
    p50: float
    p99: float
    max: float
    cpu: dict[str, float] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0

    @property
    def ok(self) -> int:
        return sum(n for status, n in self.statuses.items() if 200 <= status < 300)

    @property
    def non_2xx(self) -> int:
        return self.completed - self.ok

    def count(self, status: int) -> int:
        return self.statuses.get(status, 0)

    def cpu_per_request(self, component: str = "server") -> float:
        """CPU microseconds per completed request spent by ``component``."""
        share = self.cpu.get(component)
        return share * 1e4 / self.rate if share is not None and self.rate else float("nan")

    @classmethod
    def of(
        cls, latencies: list[float], seconds: float, statuses: dict[int, int], errors: int
    ) -> LoadResult:
        latencies.sort()
        return cls(
            completed=sum(statuses.values()),
            seconds=seconds,
            statuses=statuses,
            errors=errors,
            p50=percentile(latencies, 50),
            p99=percentile(latencies, 99),
            max=latencies[-1] if latencies else float("nan"),
        )


def merge(answers: Sequence[dict[str, Any]]) -> LoadResult:
    """One result from several workers' ``{latencies, statuses, errors, seconds}``."""
    latencies: list[float] = []
    statuses: collections.Counter[int] = collections.Counter()
    for answer in answers:
        latencies += answer["latencies"]
        statuses.update({int(k): v for k, v in answer["statuses"].items()})
    errors = sum(a["errors"] for a in answers)
    return LoadResult.of(latencies, max(a["seconds"] for a in answers), dict(statuses), errors)


# -- wrk -----------------------------------------------------------------------------------------


def _lua_string(data: bytes) -> str:
    """A Lua string literal holding exactly ``data``."""
    out = []
    for byte in data:
        if chr(byte) in '"\\':
            out.append("\\" + chr(byte))
        else:
            out.append(chr(byte) if 32 <= byte < 127 else f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


_WRK_SCRIPT = r"""-- Generated by bench/_common.py: a distinct signed Cyberbiz delivery per request.
local ffi = require("ffi")
ffi.cdef[[
typedef struct evp_md_st EVP_MD;
const EVP_MD *EVP_sha256(void);
unsigned char *HMAC(const EVP_MD *evp_md, const void *key, int key_len, const unsigned char *d,
                    size_t n, unsigned char *md, unsigned int *md_len);
]]
local crypto = ffi.C  -- wrk links libcrypto; else load it by name
if not pcall(function() return crypto.HMAC end) then crypto = ffi.load("libcrypto.so.3") end
local SECRET, HEAD = @SECRET@, @HEAD@
local P1, P2, P3 = @P1@, @P2@, @P3@
local evp = crypto.EVP_sha256()
local md, md_len = ffi.new("unsigned char[32]"), ffi.new("unsigned int[1]")
local HEX, hex = {}, {}
for i = 0, 255 do HEX[i] = string.format("%02x", i) end
local base, n, stamp, stamp_at = 0, 0, "", -1

threads = {}
local thread_count = 0
function setup(thread)
  thread:set("thread_index", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

function init(args) base = tonumber(args[1]) + thread_index * 100000000 end

function request()
  n = n + 1
  local now = os.time()
  if now ~= stamp_at then stamp_at, stamp = now, os.date("!%Y-%m-%d %H:%M:%S", now + @TZ@) end
  local body = P1 .. string.format("%d", base + n) .. P2 .. stamp .. P3
  crypto.HMAC(evp, SECRET, #SECRET, body, #body, md, md_len)
  for i = 0, 31 do hex[i + 1] = HEX[md[i]] end
  return HEAD .. table.concat(hex) .. "\r\n\r\n" .. body
end

statuses = {}
function response(status, headers, body) statuses[status] = (statuses[status] or 0) + 1 end

function done(summary, latency, requests)
  local all = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("statuses")) do
      all[#all + 1] = string.format('"%d":%d', status, count)
    end
  end
  local e = summary.errors
  io.write(string.format('BENCH_JSON {"requests":%d,"duration_us":%d,"errors":%d,' ..
    '"p50_us":%d,"p99_us":%d,"max_us":%d,"statuses":{%s}}\n', summary.requests,
    summary.duration, e.connect + e.read + e.write + e.timeout, latency:percentile(50),
    latency:percentile(99), latency.max, table.concat(all, ",")))
end
"""


def wrk_script(requests: SignedRequests) -> str:
    """Lua that makes wrk send what ``requests.build`` would, with a fresh id per request."""
    head = requests.build(ID_BASE, time.time()).partition(b"\r\n\r\n")[0].split(b"\r\n")
    signature = next(i for i, h in enumerate(head) if h.lower().startswith(b"x-cyberbiz-hmac"))
    head.append(head.pop(signature).split(b":", 1)[0] + b": ")  # the value comes per request
    template = requests.template
    values = {
        "@SECRET@": requests.shop.webhook_secrets[0].encode(),
        "@HEAD@": b"\r\n".join(head),
        "@P1@": template.head,
        "@P2@": template.middle,
        "@P3@": template.tail,
    }
    script = _WRK_SCRIPT.replace("@TZ@", str(TAIPEI_OFFSET))
    for key, value in values.items():
        script = script.replace(key, _lua_string(value))
    return script


def run_wrk(
    wrk: str, script: Path, url: str, concurrency: int, duration: float, threads: int, base_id: int
) -> LoadResult:
    """Closed loop: ``concurrency`` connections for ``duration`` seconds."""
    command = [wrk, f"-t{min(threads, concurrency)}", f"-c{concurrency}", f"-d{duration:g}s"]
    command += ["--timeout", "10s", "-s", str(script), url, "--", str(base_id)]
    done = subprocess.run(
        command, capture_output=True, text=True, check=False, timeout=duration + 60
    )
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")
    data = orjson.loads(line.removeprefix("BENCH_JSON "))
    return LoadResult(
        completed=data["requests"],
        seconds=data["duration_us"] / 1e6,
        statuses={int(k): int(v) for k, v in data["statuses"].items()},
        errors=data["errors"],
        p50=data["p50_us"] / 1000,
        p99=data["p99_us"] / 1000,
        max=data["max_us"] / 1000,
    )


# -- a small HTTP/1.1 client ---------------------------------------------------------------------

CLIENT_ERRORS = (OSError, TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError)
_KEEP_ALIVE = 4.0  # seconds a connection may idle before it is dropped (uvicorn closes at 5)


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.used = time.monotonic()

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        return cls(*await asyncio.open_connection(host, port))

    async def send(self, request: bytes) -> int:
        """Write ``request``, read the whole response, return its status."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        match = re.search(rb"\r\ncontent-length:\s*(\d+)", head, re.IGNORECASE)
        if match and int(match[1]):
            await self.reader.readexactly(int(match[1]))
        self.used = time.monotonic()
        return int(head[9:12])

    def close(self) -> None:
        self.writer.close()


class Pool:
    """Keep-alive connections, most recently used first; stale ones are closed, not reused."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._idle: list[Connection] = []

    async def fill(self, count: int) -> None:
        self._idle += [await Connection.open(self.host, self.port) for _ in range(count)]

    async def send(self, request: bytes) -> int:
        conn = None
        while self._idle and conn is None:
            candidate = self._idle.pop()
            if time.monotonic() - candidate.used < _KEEP_ALIVE:
                conn = candidate
            else:
                candidate.close()
        conn = conn or await Connection.open(self.host, self.port)
        try:
            status = await conn.send(request)
        except BaseException:
            conn.close()
            raise
        self._idle.append(conn)
        return status

    def close(self) -> None:
        for conn in self._idle:
            conn.close()


async def paced(
    host: str, port: int, requests: Sequence[bytes], rate: float, timeout: float = 10.0
) -> LoadResult:
    """Open loop: request i is due at start + i/rate, whatever happened to the earlier ones."""
    # (uvloop's loop.time() has millisecond resolution: timings use perf_counter)
    pool = Pool(host, port)
    await pool.fill(16)
    latencies: list[float] = []
    statuses: collections.Counter[int] = collections.Counter()
    errors = 0

    async def one(request: bytes, due: float) -> None:
        nonlocal errors
        try:
            async with asyncio.timeout(timeout):
                status = await pool.send(request)
        except CLIENT_ERRORS:
            errors += 1
            return
        latencies.append((time.perf_counter() - due) * 1000)
        statuses[status] += 1

    start = time.perf_counter() + 0.05
    tasks = []
    for i, request in enumerate(requests):
        due = start + i / rate
        if (delay := due - time.perf_counter()) > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(request, due)))
    await asyncio.gather(*tasks)
    pool.close()
    return LoadResult.of(latencies, time.perf_counter() - start, dict(statuses), errors)


async def closed_loop(
    host: str, port: int, make: Callable[[int], bytes], concurrency: int, duration: float
) -> dict[str, Any]:
    """``concurrency`` connections, each sending its next request once the last one answered."""
    latencies: list[float] = []
    statuses: collections.Counter[int] = collections.Counter()
    errors = 0
    numbers = iter(range(10**8))
    deadline = time.perf_counter() + duration

    async def worker() -> None:
        nonlocal errors
        pool = Pool(host, port)
        while time.perf_counter() < deadline:
            request = make(next(numbers))
            sent = time.perf_counter()
            try:
                async with asyncio.timeout(10.0):
                    status = await pool.send(request)
            except CLIENT_ERRORS:
                errors += 1
                continue
            latencies.append((time.perf_counter() - sent) * 1000)
            statuses[status] += 1
        pool.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    return {
        "latencies": latencies,
        "statuses": dict(statuses),
        "errors": errors,
        "seconds": seconds,
    }


# -- worker processes ----------------------------------------------------------------------------


_GO = {"cpu": 0.0}


def ready_then_wait_for_go() -> None:
    """Worker side: set-up is done; start measuring when the parent says so."""
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    sys.stdin.readline()
    _GO["cpu"] = time.process_time()


def answer(data: dict[str, Any]) -> None:
    """Worker side: the result as one JSON line on stdout.

    Written with ``os.write`` until done: after a uvloop loop ran in the process, a large write
    to the stdout pipe can come back partial (65,536 bytes), and ``sys.stdout`` drops the rest.
    """
    sys.stdout.flush()
    data = {**data, "cpu_seconds": time.process_time() - _GO["cpu"]}  # since GO, all threads
    view = memoryview(orjson.dumps(data, option=orjson.OPT_NON_STR_KEYS) + b"\n")
    while view:
        view = view[os.write(sys.stdout.fileno(), view) :]


def run_workers(
    argvs: Sequence[Sequence[str]], meter: CpuMeter
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Start workers, GO once all are READY; their answers and the CPU used meanwhile.

    ``client`` is the workers' own CPU since GO (the children's rusage would count their set-up).
    """
    procs = [
        subprocess.Popen(list(argv), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        for argv in argvs
    ]
    try:
        for proc in procs:
            if proc.stdout is None or proc.stdout.readline().strip() != "READY":
                raise RuntimeError(f"worker {proc.args!r} failed to start")
        meter.start()
        started = time.monotonic()
        for proc in procs:
            if proc.stdin is not None:
                proc.stdin.write("GO\n")
                proc.stdin.flush()
        outputs = [proc.communicate(timeout=900)[0] for proc in procs]
        cpu = meter.stop()
        wall = time.monotonic() - started
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    if failed := [proc.args for proc in procs if proc.returncode]:
        raise RuntimeError(f"worker failed: {failed!r}")
    answers = [orjson.loads(out.strip().splitlines()[-1]) for out in outputs]
    cpu["client"] = 100 * sum(a.pop("cpu_seconds") for a in answers) / wall
    return answers, cpu


# -- child processes and what they use ----------------------------------------------------------


class Child:
    """A long-running child in its own process group; ``stop()`` signals the whole group."""

    def __init__(self, name: str, argv: Sequence[str], log_path: Path, **kwargs: Any) -> None:
        self.name = name
        self.log_path = log_path
        with log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=REPO,
                **kwargs,
            )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 25.0) -> None:
        """SIGTERM (the process drains), SIGKILL after ``timeout``; idempotent."""
        if self.proc.poll() is not None:
            return
        _signal_group(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            _signal_group(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, sig)  # the group this child leads (start_new_session)


def wait_http(url: str, alive: Callable[[], bool], timeout: float = 60.0) -> None:
    """Until GET ``url`` answers 200 (``/readyz``: for the ingress, Kafka is connected)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive():
            raise RuntimeError(f"{url}: the server exited before it was ready")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - http://127.0.0.1
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout:.0f}s")


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - http://127.0.0.1
        return str(response.read().decode())


def prometheus_samples(text: str) -> Iterator[tuple[str, dict[str, str], float]]:
    """(name, labels, value) of each sample in Prometheus text format."""
    for line in text.splitlines():
        match = re.match(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)$", line)
        if match:
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match[2] or ""))
            yield match[1], labels, float(match[3])


_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | None) -> float | None:
    """User + system CPU time of a process, all threads (Linux ``/proc``); None if unknown."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICKS


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_cpu_seconds() -> float:
    """CPU time all cores spent busy since boot (``/proc/stat``): this and every other process."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / _TICKS


class CpuMeter:
    """CPU of named processes, plus reaped children as ``client``, between start() and stop().

    ``machine`` is what all cores did meanwhile, whoever ran: on a shared machine, what the
    measured processes do not account for is someone else's load.
    """

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = pids
        self._before: dict[str, float | None] = {}
        self._children = 0.0
        self._machine = 0.0
        self._wall = 0.0

    def start(self) -> None:
        self._before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._children = _children_cpu()
        self._machine = machine_cpu_seconds()
        self._wall = time.monotonic()

    def stop(self, client: str = "client") -> dict[str, float]:
        """% of one core per process over the interval (``machine``: up to 100 x cores)."""
        wall = time.monotonic() - self._wall
        used = {client: 100 * (_children_cpu() - self._children) / wall}
        used["machine"] = 100 * (machine_cpu_seconds() - self._machine) / wall
        for name, pid in self.pids.items():
            before, after = self._before.get(name), cpu_seconds(pid)
            if before is not None and after is not None:
                used[name] = 100 * (after - before) / wall
        return used


# -- profiles ------------------------------------------------------------------------------------


def find_py_spy() -> str | None:
    return shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))


def profile_summary(raw: Path, rate: int, seconds: float, top: int = 12) -> list[str]:
    """Markdown lines from py-spy's ``--format raw`` (collapsed stacks): where the CPU goes."""
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        total += int(count)
        own[frames[-1]] += int(count)
        for frame in {re.sub(r":\d+\)$", ")", f) for f in frames}:
            inclusive[frame] += int(count)
    if not total:
        return ["(no samples)"]
    busy = total / (rate * seconds)
    out = [f"{total:,} samples at {rate}/s over {seconds:g} s: on CPU {busy:.0%} of the time.", ""]
    out += ["Inclusive, bridge code:", ""]
    ours = [(f, n) for f, n in inclusive.most_common() if "(bridge/" in f]
    out += [f"- {100 * n / total:4.1f}% `{f}`" for f, n in ours[: top * 2]]
    out += ["", "Self time (line level):", ""]
    out += [f"- {100 * n / total:4.1f}% `{f}`" for f, n in own.most_common(top)]
    return out


# -- machine facts and output -------------------------------------------------------------------


def load_average() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def uptime() -> str:
    done = subprocess.run(["uptime"], capture_output=True, text=True, check=False)
    return done.stdout.strip() or f"load average: {load_average()}"


def machine_facts() -> Iterator[tuple[str, str]]:
    model = "?"
    with open("/proc/cpuinfo") as cpuinfo:
        model = next((ln.split(":", 1)[1].strip() for ln in cpuinfo if "model name" in ln), model)
    yield "CPUs (nproc)", f"{len(os.sched_getaffinity(0))} ({model})"
    yield "kernel", platform.release()
    yield "python", f"{platform.python_version()} ({platform.python_implementation()})"
    names = ("uvicorn", "uvloop", "httptools", "starlette", "aiokafka", "orjson")
    found = []
    for name in names:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} (absent)")
    yield "packages", ", ".join(found)


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]
