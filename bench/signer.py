"""Signatures per second and p99 latency of the remote signer under 32 concurrent clients, next to signing
with the same key in-process, in one run.

For each key (a P-256 and an RSA-3072 key file; the same kinds on a SoftHSM2 token when it is installed),
rounds alternate between:

- in-process: CLIENTS threads calling `FileSigner.sign(payload)` (what `sigscope sign --key FILE` does), or
  the token signer `sigscope sign --key pkcs11:…` uses;
- remote: CLIENTS threads calling `RemoteSigner.sign(payload)` on one `remote+https://` signer (32
  connections in flight) against `sigscope signer serve` on loopback (bearer token, access file, audit log
  on: the production shape), every signature verified by the client as it always is.

Each round lasts --seconds; a figure is the median over rounds; the ratio is remote / in-process per round
(median). By default both sides share this machine's cores (the service is a separate process), so the
clients' own HTTP and TLS work is charged against the service. With --one-core-each, in-process signing gets
one core (CPU 0), and for the remote rounds the service gets CPU 1 while the clients keep CPU 0: what one core
signs in-process next to what one core serves, as when the clients are other machines. The load average is
printed before and after, as other work on the machine changes every figure.

Usage: python bench/signer.py [--clients 32] [--seconds 3] [--rounds 3] [--one-core-each]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from testbed.signer import SignerServer, build_signer_pki

from sigscope.keys import FileSigner, Signer, load_private_key
from sigscope.keys.remote import RemoteSignerOptions, open_remote_signer
from sigscope.keys.resolve import open_signer
from sigscope.signerd.access import token_digest

GOAL = 0.70
TOKEN = "bench-token"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pin(pid: int, cpu: int) -> None:
    """Every thread of process `pid` (and those it starts later, which inherit the mask) on CPU `cpu`."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), {cpu})


def drive(sign: Callable[[bytes], bytes], clients: int, seconds: float) -> tuple[float, float]:
    """(signatures per second, p99 latency in ms) of `clients` threads signing for `seconds`."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    start = threading.Barrier(clients + 1)
    stop_at = 0.0

    def client(index: int) -> None:
        mine = latencies[index]
        payload = f"bench payload {index}".encode()
        start.wait()
        while True:
            began = time.perf_counter()
            if began >= stop_at:
                return
            sign(payload)
            mine.append(time.perf_counter() - began)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    stop_at = time.perf_counter() + seconds
    began = time.perf_counter()
    start.wait()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    every = sorted(x for mine in latencies for x in mine)
    p99 = every[min(len(every) - 1, int(len(every) * 0.99))] * 1000 if every else float("nan")
    return len(every) / elapsed, p99


def file_signer(path: str) -> Signer:
    return FileSigner(load_private_key(Path(path).read_bytes()))


def softhsm_keys(directory: Path) -> dict[str, str] | None:
    """`hsm-ec` (P-256) and `hsm-rsa` (RSA-3072) made on a fresh SoftHSM2 token: name → pkcs11: URI; None
    (and why, printed) when SoftHSM2 is not installed. SOFTHSM2_CONF is set for this process and the
    service it starts."""
    from testbed.softhsm import MODULE, make_softhsm

    from sigscope.keys.pkcs11 import generate_on_token

    if not MODULE.exists():
        print(f"SoftHSM (PKCS#11) keys: not measured: {MODULE} is not installed")
        return None
    hsm = make_softhsm(directory, "bench")
    os.environ.update(hsm.env)
    uris = {"hsm-ec": hsm.uri("bench", "bench-ec"), "hsm-rsa": hsm.uri("bench", "bench-rsa")}
    generate_on_token(uris["hsm-ec"], "ec-p256")
    generate_on_token(uris["hsm-rsa"], "rsa-3072")
    return uris


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--one-core-each", action="store_true", help="in-process on CPU 0; service on CPU 1")
    args = parser.parse_args()
    if args.one_core_each:
        if len(os.sched_getaffinity(0)) < 2:
            parser.error("--one-core-each needs two CPUs")
        pin(os.getpid(), 0)

    with tempfile.TemporaryDirectory() as tmp:
        pki = build_signer_pki(Path(tmp) / "pki")
        keys: dict[str, tuple[str, Callable[[], Signer]]] = {}
        for name, label in (("ec", "file key, EC P-256"), ("rsa", "file key, RSA-3072")):
            path = pki.path(name + ".key")
            keys[name] = (label, partial(file_signer, path))
        specs = {name: pki.path(name + ".key") for name in keys}
        token = softhsm_keys(Path(tmp) / "hsm")
        if token is not None:
            for name, label in (("hsm-ec", "SoftHSM, EC P-256"), ("hsm-rsa", "SoftHSM, RSA-3072")):
                keys[name] = (label, partial(open_signer, token[name]))
                specs[name] = token[name]
        (pki.dir / "tokens").write_text(f"{token_digest(TOKEN)} bench\n")
        (pki.dir / "token").write_text(TOKEN)
        (pki.dir / "access.yaml").write_text("".join(f"{name}: [token:bench]\n" for name in keys))
        serve = ["--tokens", str(pki.dir / "tokens"), "--access", str(pki.dir / "access.yaml")]
        serve += ["--audit-log", str(pki.dir / "audit.jsonl")]
        for name, spec in specs.items():
            serve += ["--key", f"{name}={spec}"]
        load = os.getloadavg()
        print(f"{args.clients} concurrent clients, {args.rounds} rounds of {args.seconds:g} s each, medians")
        if args.one_core_each:
            print("one core each: in-process signing and the clients on CPU 0, the service on CPU 1")
        print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} CPUs)")
        print(
            f"{'key':<22} {'in-process sig/s':>17} {'p99 ms':>8} {'remote sig/s':>13} {'p99 ms':>8}"
            f" {'ratio':>6}  {'CPU ms/sig: in-process':>22} {'service':>8} {'client':>7}"
        )
        ratios: dict[str, float] = {}
        with SignerServer(pki, *serve) as server:
            if args.one_core_each:
                pin(server.pid, 1)
            options = RemoteSignerOptions(ca_file=pki.path("tls-ca.crt"), token_file=str(pki.dir / "token"))
            for name, (label, open_local) in keys.items():
                local = open_local()
                remote = open_remote_signer(server.url(name), options)
                assert remote.public_key().public_numbers() == local.public_key().public_numbers()  # type: ignore[union-attr]
                drive(remote.sign, args.clients, 0.5)  # connections opened, caches warm
                rows: list[tuple[float, ...]] = []
                service_pid = server.pid
                for _ in range(args.rounds):
                    mine = cpu_seconds(os.getpid())
                    rate_local, p99_local = drive(local.sign, args.clients, args.seconds)
                    cpu_local = (cpu_seconds(os.getpid()) - mine) / (rate_local * args.seconds)
                    mine, theirs = cpu_seconds(os.getpid()), cpu_seconds(service_pid)
                    rate_remote, p99_remote = drive(remote.sign, args.clients, args.seconds)
                    signed = rate_remote * args.seconds
                    cpu_service = (cpu_seconds(service_pid) - theirs) / signed
                    cpu_client = (cpu_seconds(os.getpid()) - mine) / signed
                    rows.append(
                        (rate_local, p99_local, rate_remote, p99_remote, cpu_local, cpu_service, cpu_client)
                    )
                remote.close()
                ratios[name] = statistics.median(r[2] / r[0] for r in rows)
                med = [statistics.median(r[i] for r in rows) for i in range(7)]
                print(
                    f"{label:<22} {med[0]:>17.0f} {med[1]:>8.2f} {med[2]:>13.0f} {med[3]:>8.2f}"
                    f" {ratios[name]:>6.2f}  {med[4] * 1000:>22.2f} {med[5] * 1000:>8.2f}"
                    f" {med[6] * 1000:>7.2f}"
                )
        load = os.getloadavg()
        print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        for name in ("ec", "rsa"):
            verdict = "met" if ratios[name] >= GOAL else "NOT met"
            print(f"goal (remote >= {GOAL:.2f} x in-process, file key): {verdict} with {keys[name][0]}")


if __name__ == "__main__":
    main()
