"""Signatures per second and p99 latency of the remote signer under 32 concurrent clients, next to signing
with the same key in-process, in one run.

For each key (a P-256 and an RSA-3072 key file), rounds alternate between:

- in-process: CLIENTS threads calling `FileSigner.sign(payload)` (what `sigscope sign --key FILE` does);
- remote: CLIENTS threads calling `RemoteSigner.sign(payload)` on one `remote+https://` signer (32
  connections in flight) against `sigscope signer serve` on loopback (bearer token, access file, audit log
  on: the production shape), every signature verified by the client as it always is.

Each round lasts --seconds; a figure is the median over rounds; the ratio is remote / in-process per round
(median). Both sides share this machine's cores (the service is a separate process). A PKCS#11 (SoftHSM) row
needs sigscope.keys.resolve (the PKCS#11 branch); without it the script says so.

Usage: python bench/signer.py [--clients 32] [--seconds 3] [--rounds 3]
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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from testbed.signer import SignerServer, build_signer_pki

from sigscope.keys import FileSigner, load_private_key
from sigscope.keys.remote import RemoteSignerOptions, open_remote_signer
from sigscope.signerd.access import token_digest

GOAL = 0.70
TOKEN = "bench-token"


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        pki = build_signer_pki(Path(tmp) / "pki")
        (pki.dir / "tokens").write_text(f"{token_digest(TOKEN)} bench\n")
        (pki.dir / "token").write_text(TOKEN)
        (pki.dir / "access.yaml").write_text("ec: [token:bench]\nrsa: [token:bench]\n")
        serve = ["--tokens", str(pki.dir / "tokens"), "--access", str(pki.dir / "access.yaml")]
        serve += ["--audit-log", str(pki.dir / "audit.jsonl")]
        for name in ("ec", "rsa"):
            serve += ["--key", f"{name}={pki.path(name + '.key')}"]
        print(f"{args.clients} concurrent clients, {args.rounds} rounds of {args.seconds:g} s each, medians")
        print(
            f"{'key':<22} {'in-process sig/s':>17} {'p99 ms':>8} {'remote sig/s':>13} {'p99 ms':>8}"
            f" {'ratio':>6}  {'CPU ms/sig: in-process':>22} {'service':>8} {'client':>7}"
        )
        with SignerServer(pki, *serve) as server:
            options = RemoteSignerOptions(ca_file=pki.path("tls-ca.crt"), token_file=str(pki.dir / "token"))
            for name, label in (("ec", "file key, EC P-256"), ("rsa", "file key, RSA-3072")):
                local = FileSigner(load_private_key((pki.dir / f"{name}.key").read_bytes()))
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
                ratio = statistics.median(r[2] / r[0] for r in rows)
                med = [statistics.median(r[i] for r in rows) for i in range(7)]
                print(
                    f"{label:<22} {med[0]:>17.0f} {med[1]:>8.2f} {med[2]:>13.0f} {med[3]:>8.2f} {ratio:>6.2f}"
                    f"  {med[4] * 1000:>22.2f} {med[5] * 1000:>8.2f} {med[6] * 1000:>7.2f}"
                )
                if name == "rsa":
                    capacity = med[4] / med[5]
                    print(
                        f"service alone (its CPU per signature next to in-process signing): {capacity:.2f} x "
                        "in-process; client and service share this machine's cores here"
                    )
                if name == "rsa":
                    verdict = "met" if ratio >= GOAL else "NOT met"
                    print(f"goal (remote >= {GOAL:.2f} x in-process, file key): {verdict} with RSA-3072")
        try:
            import sigscope.keys.resolve  # noqa: F401
        except ImportError:
            print("SoftHSM (PKCS#11) key: not measured: sigscope.keys.resolve is not on this branch")


if __name__ == "__main__":
    main()
