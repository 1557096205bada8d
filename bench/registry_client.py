"""Manifest HEADs per second: sigscope's client next to a raw-socket baseline, in one run.

Starts a local Debian `docker-registry`, tags one image many times, then at
concurrency 1, 8 and 32 times N HEAD requests with:

- raw: hand-written HTTP/1.1 over keep-alive asyncio sockets, one per worker (the floor
  for what Python can drive; no parsing beyond the status line and one header);
- sigscope: `RegistryClient.head_manifest` (aiohttp, auth/retry/digest-check path included);
- threads: a `requests` session pool in threads (the threaded design we did not pick);
- httpx: httpx.AsyncClient, if installed (the async design we did not pick).

Rounds alternate between clients and the median is reported, since the machine is shared.
Usage: python bench/registry_client.py [--requests N] [--rounds R]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import requests
import testbed

from sigscope.oci import mediatypes
from sigscope.oci.client import RegistryClient, RegistryOptions

REPO = "bench/heads"
TAGS = 200


async def raw_heads(host: str, concurrency: int, total: int) -> None:
    ip, port = host.split(":")
    per_worker = [total // concurrency + (1 if i < total % concurrency else 0) for i in range(concurrency)]

    async def worker(index: int, count: int) -> None:
        reader, writer = await asyncio.open_connection(ip, int(port))
        try:
            for n in range(count):
                tag = f"t{(index * 7919 + n) % TAGS:04d}"
                writer.write(
                    (
                        f"HEAD /v2/{REPO}/manifests/{tag} HTTP/1.1\r\nHost: {host}\r\n"
                        f"Accept: {mediatypes.MANIFEST_ACCEPT}\r\n\r\n"
                    ).encode()
                )
                head = await reader.readuntil(b"\r\n\r\n")
                if not head.startswith(b"HTTP/1.1 200") or b"Docker-Content-Digest" not in head:
                    raise RuntimeError(f"raw baseline got {head[:60]!r}")
        finally:
            writer.close()

    await asyncio.gather(*(worker(i, c) for i, c in enumerate(per_worker)))


async def sigscope_heads(host: str, concurrency: int, total: int) -> None:
    options = RegistryOptions(insecure=True, use_auth_files=False, max_concurrency=concurrency)
    async with RegistryClient(host, options) as client:
        await client.ping()
        queue = iter(range(total))

        async def worker() -> None:
            for n in queue:
                await client.head_manifest(REPO, f"t{n % TAGS:04d}")

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def thread_heads(host: str, concurrency: int, total: int) -> None:
    local = threading.local()

    def one(n: int) -> None:
        session = getattr(local, "session", None)
        if session is None:
            session = local.session = requests.Session()
            session.trust_env = False
        resp = session.head(
            f"http://{host}/v2/{REPO}/manifests/t{n % TAGS:04d}",
            headers={"Accept": mediatypes.MANIFEST_ACCEPT},
        )
        if resp.status_code != 200:
            raise RuntimeError(resp.status_code)

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(one, range(total)))


async def httpx_heads(host: str, concurrency: int, total: int) -> None:
    import httpx

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, trust_env=False) as client:
        queue = iter(range(total))

        async def worker() -> None:
            for n in queue:
                resp = await client.head(
                    f"http://{host}/v2/{REPO}/manifests/t{n % TAGS:04d}",
                    headers={"Accept": mediatypes.MANIFEST_ACCEPT},
                )
                if resp.status_code != 200:
                    raise RuntimeError(resp.status_code)

        await asyncio.gather(*(worker() for _ in range(concurrency)))


def timed(run: Callable[[], None]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def as_sync(factory: Callable[[str, int, int], Awaitable[None]]) -> Callable[[str, int, int], None]:
    def run(host: str, concurrency: int, total: int) -> None:
        asyncio.run(factory(host, concurrency, total))  # type: ignore[arg-type]

    return run


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=2000, help="HEADs per measurement (default 2000)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median is reported")
    args = parser.parse_args()

    clients: dict[str, Callable[[str, int, int], None]] = {
        "raw": as_sync(raw_heads),
        "sigscope": as_sync(sigscope_heads),
        "threads": thread_heads,
    }
    try:
        import httpx  # noqa: F401

        clients["httpx"] = as_sync(httpx_heads)
    except ImportError:
        pass

    with tempfile.TemporaryDirectory(prefix="sigscope-bench-") as tmp:
        workdir = Path(tmp)
        handle = testbed.start_registry(workdir / "registry")
        try:
            layout = workdir / "layout"
            testbed.build_layout(layout, "v1", seed="bench")
            testbed.push_layout(layout, "v1", handle.host, REPO, "v1")
            manifest = testbed.get_manifest(handle.url, REPO, "v1", verify=True).content
            testbed.put_tags(
                handle.host, REPO, manifest, mediatypes.OCI_MANIFEST, [f"t{n:04d}" for n in range(TAGS)]
            )
            for run in clients.values():  # warm-up: connections, imports, registry caches
                run(handle.host, 8, 200)

            print(f"load average before: {os.getloadavg()[0]:.2f} (2 cores; other processes share them)")
            print(
                f"{args.requests} manifest HEADs per measurement, "
                f"median of {args.rounds} alternating rounds\n"
            )
            header = f"{'concurrency':>11} " + " ".join(f"{name + ' HEAD/s':>16}" for name in clients)
            print(header + f" {'sigscope/raw':>13}")
            for concurrency in (1, 8, 32):
                total = args.requests if concurrency > 1 else max(200, args.requests // 3)
                samples: dict[str, list[float]] = {name: [] for name in clients}
                for _ in range(args.rounds):
                    for name, run in clients.items():
                        elapsed = timed(functools.partial(run, handle.host, concurrency, total))
                        samples[name].append(total / elapsed)
                rates = {name: statistics.median(values) for name, values in samples.items()}
                cells = " ".join(f"{rates[name]:>16.0f}" for name in clients)
                print(f"{concurrency:>11} {cells} {rates['sigscope'] / rates['raw']:>13.2f}")
            print(f"\nload average after: {os.getloadavg()[0]:.2f}")
        finally:
            handle.stop()


if __name__ == "__main__":
    main()
