"""Added round-trip latency for benchmarks: `tc netem` on a veth into a network namespace, or a TCP proxy.

Two ways to put ~RTT of latency between a crawler and a registry, tried in this order by
`latency_target()`:

- netns: a network namespace joined to the host by a veth pair with `tc qdisc ... netem delay RTT/2`
  on both ends; a second `docker-registry` serving the *same* storage directory listens inside the
  namespace on the veth address, so every packet (handshakes included) crosses the delayed link.
  Needs root, iproute2 and the kernel's sch_netem. Namespace, veth and registry are removed on exit.
- proxy: `python bench/_latency.py proxy --upstream HOST:PORT --delay-ms D` in its own process (so its
  CPU and event loop are not the measured client's): an asyncio TCP proxy on 127.0.0.1 that forwards
  every chunk D ms after it arrived, in each direction, in order per connection, and holds a new
  connection's first bytes for one extra round trip as a TCP handshake over the link would. One
  request/response exchange therefore costs 2·D more than on loopback, with no limit on throughput or
  on how many exchanges are in flight.

Only loopback and the addresses created on the benchmark's own veth pair are used.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import requests
import yaml


class LatencyUnavailable(RuntimeError):
    """This method cannot add latency here (with why)."""


# ----------------------------------------------------------------------------------- proxy (server)


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: float, not_before: float
) -> None:
    """Forward reader → writer, each chunk `delay` s after it was read (and not before `not_before`)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def read() -> None:
        try:
            while True:
                chunk = await reader.read(1 << 16)
                due = max(loop.time(), not_before) + delay
                await queue.put((due, chunk))
                if not chunk:
                    return
        except (ConnectionError, OSError):
            await queue.put((loop.time(), b""))

    reading = asyncio.create_task(read())
    try:
        while True:
            due, chunk = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not chunk:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        return
    finally:
        reading.cancel()
        # Awaited, not only cancelled: a task left pending is destroyed with the loop, and asyncio says
        # so on stderr ("Task was destroyed but it is pending").
        await asyncio.gather(reading, return_exceptions=True)


async def _serve_proxy(upstream: str, delay_ms: float, ready: asyncio.Future[str] | None = None) -> None:
    up_host, up_port = upstream.rsplit(":", 1)
    delay = delay_ms / 1000.0

    # The connections' tasks, held here: asyncio keeps only weak references, and at shutdown each is
    # cancelled and awaited before the loop closes.
    connections: set[asyncio.Task[None]] = set()

    async def handle(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        connections.add(task)
        task.add_done_callback(connections.discard)
        loop = asyncio.get_running_loop()
        accepted = loop.time()
        try:
            up_reader, up_writer = await asyncio.open_connection(up_host, int(up_port))
        except OSError:
            client_writer.close()
            return
        try:
            # Emulated handshake: a client on a real link could send only one RTT after connecting.
            await asyncio.gather(
                _pipe(client_reader, up_writer, delay, accepted + 2 * delay),
                _pipe(up_reader, client_writer, delay, accepted),
            )
        except asyncio.CancelledError:
            pass  # shutting down with the connection open; asyncio 3.11 would log the cancellation
        finally:
            for w in (up_writer, client_writer):
                w.close()
            for w in (up_writer, client_writer):
                with contextlib.suppress(Exception):
                    await w.wait_closed()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=512)
    port = server.sockets[0].getsockname()[1]
    address = f"127.0.0.1:{port}"
    if ready is not None:
        ready.set_result(address)
    else:
        print(f"LISTENING {address}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()
        server.close()
        for task in list(connections):
            task.cancel()
        await asyncio.gather(*connections, return_exceptions=True)


@dataclass
class ProxyHandle:
    host: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)


def start_proxy(upstream: str, delay_ms: float, timeout: float = 15.0) -> ProxyHandle:
    """Start the delaying proxy in its own process; returns its 127.0.0.1:PORT."""
    proc = subprocess.Popen(
        [
            sys.executable,
            str(Path(__file__).resolve()),
            "proxy",
            "--upstream",
            upstream,
            "--delay-ms",
            str(delay_ms),
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    line = b""
    while time.monotonic() < deadline and proc.poll() is None:
        line = proc.stdout.readline()
        if line.startswith(b"LISTENING "):
            return ProxyHandle(line.split()[1].decode(), proc)
    proc.kill()
    proc.wait()
    raise LatencyUnavailable(f"latency proxy did not start ({line!r})")


# ------------------------------------------------------------------------------------ netns + netem


def _run(*cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)


def _must(*cmd: str) -> None:
    proc = _run(*cmd)
    if proc.returncode != 0:
        raise LatencyUnavailable(f"`{' '.join(cmd)}` failed: {(proc.stderr or proc.stdout).strip()}")


@contextlib.contextmanager
def netem_registry(
    registry_config: Path, delay_ms: float, timeout: float = 15.0
) -> Iterator[tuple[str, int]]:
    """A second registry over the same storage, in a namespace behind a veth with netem on both ends.

    `delay_ms` is the one-way delay added on each end (RTT grows by twice that). Yields (HOST:PORT, its pid).
    """
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("tc"):
        raise LatencyUnavailable("needs root with iproute2 (ip, tc)")
    tag = f"{os.getpid() % 100000}"
    ns = f"sigscope-bench-{tag}"
    host_if, ns_if = f"ssb{tag}h", f"ssb{tag}n"
    subnet = 64 + os.getpid() % 128  # 10.213.<subnet>.0/30, on our own veth pair only
    host_ip, ns_ip = f"10.213.{subnet}.1", f"10.213.{subnet}.2"
    created_ns = created_link = False
    registry: subprocess.Popen[bytes] | None = None
    try:
        _must("ip", "netns", "add", ns)
        created_ns = True
        _must("ip", "link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        created_link = True
        _must("ip", "link", "set", ns_if, "netns", ns)
        _must("ip", "addr", "add", f"{host_ip}/30", "dev", host_if)
        _must("ip", "link", "set", host_if, "up")
        _must("ip", "-n", ns, "addr", "add", f"{ns_ip}/30", "dev", ns_if)
        _must("ip", "-n", ns, "link", "set", ns_if, "up")
        _must("ip", "-n", ns, "link", "set", "lo", "up")
        if delay_ms > 0:
            netem = ["root", "netem", "delay", f"{delay_ms}ms", "limit", "100000"]
            _must("tc", "qdisc", "add", "dev", host_if, *netem)
            _must("ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", ns_if, *netem)
        config = yaml.safe_load(registry_config.read_text())
        config["http"]["addr"] = f"{ns_ip}:5000"
        config_file = registry_config.with_name(f"config-netns-{tag}.yml")
        config_file.write_text(yaml.safe_dump(config, sort_keys=False))
        log = registry_config.with_name(f"registry-netns-{tag}.log").open("wb")
        binary = shutil.which("docker-registry") or "docker-registry"
        registry = subprocess.Popen(
            ["ip", "netns", "exec", ns, binary, "serve", str(config_file)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        host = f"{ns_ip}:5000"
        with requests.Session() as session:
            session.trust_env = False
            deadline = time.monotonic() + timeout
            while True:
                if registry.poll() is not None:
                    raise LatencyUnavailable("registry in the namespace exited")
                try:
                    session.get(f"http://{host}/v2/", timeout=1)
                    break
                except requests.RequestException:
                    if time.monotonic() > deadline:
                        raise LatencyUnavailable("registry in the namespace did not answer") from None
                    time.sleep(0.05)
        yield host, registry.pid  # `ip netns exec` execs the registry: same pid
    finally:
        if registry is not None and registry.poll() is None:
            registry.terminate()
            try:
                registry.wait(timeout=10)
            except subprocess.TimeoutExpired:
                registry.kill()
                registry.wait(timeout=10)
        if created_link:
            _run("ip", "link", "del", host_if)  # takes its peer and both qdiscs with it
        if created_ns:
            _run("ip", "netns", "del", ns)


# ---------------------------------------------------------------------------------------- choose one


@contextlib.contextmanager
def latency_target(
    upstream: str, upstream_pid: int, registry_config: Path, delay_ms_rtt: float, method: str = "auto"
) -> Iterator[tuple[str, str, list[int]]]:
    """Yield (HOST:PORT with `delay_ms_rtt` ms of added round trip, the method used, server-side pids)."""
    one_way = delay_ms_rtt / 2
    notes: list[str] = []
    if method in ("auto", "netns"):
        try:
            with netem_registry(registry_config, one_way) as (host, pid):
                yield host, f"netns + veth + tc netem delay {one_way:g}ms on both ends", [pid]
            return
        except LatencyUnavailable as exc:
            if method == "netns":
                raise
            notes.append(f"netem unavailable: {exc}")
    proxy = start_proxy(upstream, one_way)
    try:
        why = f" ({'; '.join(notes)})" if notes else ""
        description = f"asyncio TCP proxy in its own process, {one_way:g} ms per direction{why}"
        yield proxy.host, description, [upstream_pid, proxy.process.pid]
    finally:
        proxy.stop()


def measure_rtt(host: str, samples: int = 30) -> float:
    """Median ms of one `GET /v2/` on a warm keep-alive connection."""
    with requests.Session() as session:
        session.trust_env = False
        session.get(f"http://{host}/v2/", timeout=10)
        times = []
        for _ in range(samples):
            start = time.perf_counter()
            session.get(f"http://{host}/v2/", timeout=10)
            times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    proxy = sub.add_parser("proxy", help="run the delaying TCP proxy (prints LISTENING HOST:PORT)")
    proxy.add_argument("--upstream", required=True, metavar="HOST:PORT")
    proxy.add_argument("--delay-ms", type=float, required=True, help="one-way delay per direction")
    args = parser.parse_args()
    if args.command == "proxy":
        asyncio.run(_serve_proxy(args.upstream, args.delay_ms))


if __name__ == "__main__":
    main()
