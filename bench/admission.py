"""AdmissionReviews per second and their latency: `sigscope webhook serve` under N concurrent clients.

Starts a local Debian `docker-registry`, pushes IMAGES small images plus one unsigned image, signs the
IMAGES with `sigscope sign --key` (under each host name the webhook will see them by), writes a sigscope/v1
policy requiring that key, and runs the webhook (the real CLI command, the real policy engine) in a process
of its own. The clients (asyncio + aiohttp over HTTPS, keep-alive, in --client-procs processes of their
own, so one Python client's CPU does not cap the rate) POST AdmissionReviews of Pods with 1 container (an
image drawn at random, the unsigned one 1 time in 10) and with 10 containers (ten images, the unsigned one
among them 1 time in 10) to /validate?timeout=10s.

Two ways to load it, each a row:

- closed loop (`cli` = N clients): each client sends its next review when the last one is answered; the
  reviews/s is the most the webhook (and the machine) gives; latency then includes the queue N clients
  make (N / throughput at least);
- open loop (`rate` = R reviews/s, --rate): reviews are sent on a fixed schedule whatever the answers,
  spread over the client processes; latency runs from the review's scheduled time, so a stalled client or
  server counts against it (no coordinated omission). This is how a busy API server calls a webhook, and
  what the goal "p99 at >= 500 reviews/s" means.

`cli CPU` is the client processes' CPU time over the row's wall time (1.00 = one core busy), `hook CPU`
the webhook process's: the client must not be what limits a row. With --rounds N each row is run N times
and the round with the median p99 shown (every round's p99 printed beneath, wrong admits and errors summed
over all): on a shared machine another process's burst of CPU lands on single rounds.

Modes, each against a webhook started for it:

- warm: default TTLs, every verdict cached by a first pass: the answer is the webhook's own work;
- cold: `--allow-ttl 0 --deny-ttl 0 --tag-ttl 0`: every review resolves its tags and verifies its images
  against the registry (concurrent identical verifications still coalesce, as they would in a cluster);
- slow: cold, through a TCP proxy in its own process that adds 200 ms to every request/response exchange
  (bench/_latency.py), so a verification of several requests takes ~0.4-1 s: how the deadline and
  coalescing hold;
- down: verdicts cached with 1 s TTLs, then the registry's proxy stopped and the TTLs passed: every answer
  is a stale verdict (or onError) and must come inside the deadline.

"wrong admits" counts reviews allowed although one of their images is unsigned: it must be 0 everywhere.
RSS is the webhook process's after the mode. Usage:

    python bench/admission.py [--clients 32] [--seconds 5] [--modes warm,cold,slow,down]
                              [--rate 500] [--client-procs 2] [--rounds 1]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import multiprocessing
import os
import random
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import aiohttp
import testbed
from _latency import start_proxy
from testbed.admission import review_bytes, workload
from testbed.cli import run_sigscope

from sigscope.keys import generate, write_key_pair

IMAGES = 10
PASSWORD = "bench-admission"
DEADLINE = 3.0
HEADER = (
    "| mode  |  c | load     | review/s | p50 ms   | p99 ms   | max ms   | errors | wrong | denied "
    "| RSS MiB | cli CPU | hook CPU |"
)


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""
    wrong_admits: int = 0
    denied: int = 0
    elapsed: float = 0.0
    cpu: float = 0.0  # the client processes' CPU seconds

    def merge(self, other: Result) -> None:
        self.latencies += other.latencies
        self.errors += other.errors
        self.first_error = self.first_error or other.first_error
        self.wrong_admits += other.wrong_admits
        self.denied += other.denied
        self.elapsed = max(self.elapsed, other.elapsed)
        self.cpu += other.cpu


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def push_and_sign(registry: testbed.RegistryHandle, work: Path, hosts: list[str]) -> None:
    for n in range(IMAGES + 1):
        layout = work / f"layout-{n}"
        testbed.build_layout(layout, "v1", seed=f"bench/admission/{n}")
        testbed.push_layout(layout, "v1", registry.host, f"bench/app{n}", "1.0")
    write_key_pair(work / "release", generate("ecdsa-p256"), PASSWORD)
    for host in hosts:
        for n in range(IMAGES):  # app{IMAGES} stays unsigned
            signed = run_sigscope(
                "sign",
                f"{host}/bench/app{n}:1.0",
                "--key",
                str(work / "release.key"),
                "--insecure",
                password=PASSWORD,
            )
            if signed.returncode != 0:
                raise SystemExit(f"sign failed: {signed.stderr}")


def write_policy(work: Path) -> Path:
    path = work / "policy.yaml"
    path.write_text(
        """apiVersion: sigscope/v1
kind: Policy
unmatched: deny
rules:
  - name: bench
    images: ["**/bench/*"]
    authorities:
      - name: release
        key: {path: release.pub}
"""
    )
    return path


@dataclass
class Webhook:
    process: subprocess.Popen[bytes]
    url: str

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_webhook(work: Path, cert: Path, key: Path, hosts: list[str], *flags: str) -> Webhook:
    args = [
        sys.executable,
        str(Path(__file__).resolve()),
        "serve",
        "--policy",
        str(work / "policy.yaml"),
        "--tls-cert",
        str(cert),
        "--tls-key",
        str(key),
        "--port",
        "0",
        "--audit-log",
        os.devnull,
        "--log-level",
        "error",
        "--deadline",
        str(DEADLINE),
        "--timeout",
        "2",
    ]
    for host in hosts:
        args += ["--insecure-registry", host]
    log = work / f"webhook-{time.monotonic_ns()}.log"
    with log.open("wb") as sink:  # a file, not a pipe: a pipe nobody reads would stall the server
        process = subprocess.Popen([*args, *flags], stdin=subprocess.DEVNULL, stderr=sink)
    deadline = time.monotonic() + 30
    while "serving on" not in (text := log.read_text()):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise SystemExit(f"webhook did not start: {text[-2000:]}")
        time.sleep(0.05)
    return Webhook(process, text.split("serving on ")[1].split()[0])


def reviews(host: str, containers: int, rng: random.Random) -> tuple[bytes, bool]:
    """A review and whether it must be denied (an unsigned image among its images)."""
    if containers == 1:
        n = IMAGES if rng.random() < 0.1 else rng.randrange(IMAGES)
        images = [f"{host}/bench/app{n}:1.0"]
    else:
        picks = list(range(IMAGES))
        if rng.random() < 0.1:
            picks[rng.randrange(IMAGES)] = IMAGES
        images = [f"{host}/bench/app{n}:1.0" for n in picks]
    body = review_bytes("Pod", workload("Pod", images), uid=f"u{rng.random()}")
    return body, any(image.endswith(f"app{IMAGES}:1.0") for image in images)


@dataclass(frozen=True)
class Load:
    """One client process's share of a row: `clients` closed-loop clients, or `rate` reviews/s open loop
    (with at most `clients` connections)."""

    url: str
    ca: str
    host: str
    containers: int
    clients: int
    seconds: float
    rate: float = 0.0
    seed: int = 0


async def _send(
    session: aiohttp.ClientSession, load: Load, body: bytes, must_deny: bool, since: float, result: Result
) -> None:
    try:
        async with session.post(
            f"{load.url}/validate?timeout=10s", data=body, headers={"content-type": "application/json"}
        ) as response:
            answer = await response.read()
            status = response.status
    except aiohttp.ClientError as exc:
        result.errors += 1
        result.first_error = result.first_error or f"{type(exc).__name__}: {exc}"
        return
    result.latencies.append(time.perf_counter() - since)
    if status != 200:
        result.errors += 1
        result.first_error = result.first_error or f"HTTP {status}: {answer[:200]!r}"
        return
    allowed = json.loads(answer)["response"]["allowed"]
    result.denied += not allowed
    result.wrong_admits += bool(allowed and must_deny)


async def _load(load: Load) -> Result:
    context = ssl.create_default_context(cafile=load.ca)
    result = Result()
    connector = aiohttp.TCPConnector(ssl=context, limit=load.clients)
    # Bodies made beforehand: building JSON is the client's work, not the webhook's.
    rng = random.Random(load.seed)
    bodies = [reviews(load.host, load.containers, rng) for _ in range(256)]
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:
        started = time.perf_counter()
        stop_at = started + load.seconds
        if load.rate:
            # Open loop: review n is due at started + n / rate, sent then whatever came back before.
            pending: set[asyncio.Task[None]] = set()
            n = 0
            while (due := started + n / load.rate) < stop_at:
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                body, must_deny = bodies[n % len(bodies)]
                task = asyncio.create_task(_send(session, load, body, must_deny, due, result))
                pending.add(task)
                task.add_done_callback(pending.discard)
                n += 1
            await asyncio.gather(*pending)
        else:

            async def client(index: int) -> None:
                n = index * 7
                while time.perf_counter() < stop_at:
                    body, must_deny = bodies[n % len(bodies)]
                    n += 1
                    await _send(session, load, body, must_deny, time.perf_counter(), result)

            await asyncio.gather(*(client(i) for i in range(load.clients)))
        result.elapsed = time.perf_counter() - started
    return result


def _run_load(load: Load) -> Result:
    cpu = time.process_time()
    result = asyncio.run(_load(load))
    result.cpu = time.process_time() - cpu
    return result


def load(pool: ProcessPoolExecutor, base: Load, procs: int, *, rate: float = 0.0) -> Result:
    """`base` spread over `procs` client processes (its clients and its rate divided between them)."""
    shares = [
        dataclasses.replace(
            base, clients=max(1, base.clients // procs), rate=rate / procs, seed=base.seed * 100 + p
        )
        for p in range(procs)
    ]
    total = Result()
    for part in pool.map(_run_load, shares):
        total.merge(part)
    return total


def row(mode: str, containers: int, what: str, result: Result, rss: float, hook_cpu: float) -> str:
    n = len(result.latencies)
    return (
        f"| {mode:<5} | {containers:>2} | {what:<8} | {n / result.elapsed:8.0f} | "
        f"{percentile(result.latencies, 0.5) * 1000:8.1f} | "
        f"{percentile(result.latencies, 0.99) * 1000:8.1f} | "
        f"{max(result.latencies, default=0) * 1000:8.1f} | {result.errors:>6} | {result.wrong_admits:>5} | "
        f"{result.denied:>6} | {rss:7.0f} | {result.cpu / result.elapsed:7.2f} | "
        f"{hook_cpu / result.elapsed:8.2f} |"
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        from sigscope.cli.main import quiet_library_deprecations
        from sigscope.cli.webhook_serve import serve_cmd

        quiet_library_deprecations()
        serve_cmd.main(sys.argv[2:], prog_name="sigscope webhook serve")
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--clients", type=int, default=32, help="closed-loop clients (and open-loop connections)"
    )
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--modes", default="warm,cold,slow,down")
    parser.add_argument("--rate", type=float, default=500.0, help="open-loop reviews/s (warm, down; 0: none)")
    parser.add_argument("--client-procs", type=int, default=2, help="client processes")
    parser.add_argument(
        "--rounds", type=int, default=1, help="rounds per row; the row shows the one with the median p99"
    )
    args = parser.parse_args()
    modes = args.modes.split(",")
    procs = max(1, args.client_procs)
    if testbed.registry_binary() is None:
        raise SystemExit("docker-registry is not installed")

    with (
        tempfile.TemporaryDirectory(prefix="sigscope-bench-admission-") as tmp,
        ProcessPoolExecutor(procs, mp_context=multiprocessing.get_context("spawn")) as pool,
    ):
        work = Path(tmp)
        registry = testbed.start_registry(work / "registry")
        slow = start_proxy(registry.host, 100.0)  # 100 ms each way: +200 ms per exchange
        down = start_proxy(registry.host, 0.0)
        try:
            _, cert, key = testbed.make_tls_files(work / "tls")
            ca = str(work / "tls" / "ca.pem")
            hosts = [registry.host, slow.host, down.host]
            started = time.perf_counter()
            push_and_sign(registry, work, hosts)
            write_policy(work)
            print(
                f"setup: {IMAGES} signed images + 1 unsigned under 3 host names "
                f"in {time.perf_counter() - started:.1f}s"
            )
            print(
                f"{args.seconds:g} s per row, {procs} client processes, deadline {DEADLINE:g} s, "
                f"{os.cpu_count()}-core machine (load average {os.getloadavg()[0]:.2f} at start)"
            )
            print(HEADER)
            print("|" + "|".join("-" * (len(c)) for c in HEADER.strip("|").split("|")) + "|")
            for mode in modes:
                flags: list[str] = []
                host = registry.host
                if mode in ("cold", "slow"):
                    flags = ["--allow-ttl", "0", "--deny-ttl", "0", "--tag-ttl", "0"]
                    host = slow.host if mode == "slow" else registry.host
                if mode == "down":
                    flags = ["--allow-ttl", "1", "--deny-ttl", "1", "--tag-ttl", "1"]
                    host = down.host
                webhook = start_webhook(work, cert, key, hosts, *flags)
                try:
                    if mode in ("warm", "down"):
                        for containers in (1, 10):  # every image's verdict cached once
                            load(pool, Load(webhook.url, ca, host, containers, 4, 1.0), procs)
                    if mode == "down":
                        down.stop()
                        time.sleep(1.2)
                    for containers in (1, 10):
                        runs = [(f"cli {args.clients}", 0.0)]
                        if args.rate and mode in ("warm", "down"):
                            runs.append((f"{args.rate:g}/s", args.rate))
                        for what, rate in runs:
                            base = Load(webhook.url, ca, host, containers, args.clients, args.seconds)
                            rounds: list[tuple[Result, float]] = []
                            for _ in range(max(1, args.rounds)):
                                hook_cpu = cpu_seconds(webhook.process.pid)
                                result = load(pool, base, procs, rate=rate)
                                rounds.append((result, cpu_seconds(webhook.process.pid) - hook_cpu))
                            # The round with the median p99 is the row; a shared machine's bursts land
                            # on single rounds, and every round's p99 is printed beneath.
                            rounds.sort(key=lambda r: percentile(r[0].latencies, 0.99))
                            result, hook_cpu = rounds[len(rounds) // 2]
                            rss = rss_mib(webhook.process.pid)
                            print(row(mode, containers, what, result, rss, hook_cpu), flush=True)
                            if len(rounds) > 1:
                                p99s = " / ".join(
                                    f"{percentile(r.latencies, 0.99) * 1000:.1f}" for r, _ in rounds
                                )
                                wrong = sum(r.wrong_admits for r, _ in rounds)
                                errors = sum(r.errors for r, _ in rounds)
                                print(
                                    f"  p99 of the {len(rounds)} rounds: {p99s} ms; "
                                    f"wrong admits {wrong}, errors {errors} in all",
                                    flush=True,
                                )
                            for r, _ in rounds:
                                if r.first_error:
                                    print(f"  first error: {r.first_error}", flush=True)
                                    break
                finally:
                    webhook.stop()
        finally:
            slow.stop()
            down.stop()
            registry.stop()
        print(f"load average {os.getloadavg()[0]:.2f} at the end")


if __name__ == "__main__":
    main()
