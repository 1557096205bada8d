"""Cosign signatures verified per second: sigscope next to raw `cryptography` verifies, in one run.

Builds one image in an OCI layout (no network), signs it N times with K ECDSA P-256 keys (signature i
by key i % K) and stores all N simple-signing layers on its ONE `sha256-<hex>.sig` manifest, assembled
with sigscope's own signing functions (`build_payload`, `FileSigner.sign`, `layer_annotations`,
`assemble_manifest`, `OCILayout.put_*`). Every payload is what `sigscope sign -a bench=<i>` writes, so
each layer has a blob of its own. Then it times, over those N signatures:

- raw: `public_key.verify(der_sig, payload, ECDSA(SHA256()))` on prepared (key, sig, payload)
  triples with the signer's key: one verify per signature, the floor;
- parse only: `cosign.parse_signature_layer` on the in-memory layers, no trust (no crypto: key-only
  signatures are skipped there), to show what the parsing costs on its own;
- sigscope, right key first: `parse_signature_layer` + `apply_keys(sig, keys)` with the K keys
  ordered so the signer's key is tried first (one verify per signature; the >= 80 % goal);
- sigscope, K keys: the same with the keys in one fixed order, so on average (K + 1) / 2 verifies
  per signature, as `--key K1 ... --key KK` does;
- in-process: `scan_image` on the layout + `verify()` (what `sigscope verify` runs, minus the CLI);
- CLI: `python -m sigscope verify oci:LAYOUT:v1 --key K1 ... -o json` as a subprocess, nothing
  subtracted; `python -m sigscope --version` is timed alongside as its start-up cost, and
  `python -m sigscope verify --help` as the start-up including the verify command's imports.

Rounds alternate between the measurements and the median is reported, since the machine is shared.
Usage: python bench/verify.py [--signatures N] [--keys K] [--rounds R]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import testbed
from cryptography.hazmat.primitives.asymmetric.ec import ECDSA
from cryptography.hazmat.primitives.hashes import SHA256

from sigscope.formats import cosign
from sigscope.keys import FileSigner, generate, public_pem
from sigscope.model import Descriptor, Status
from sigscope.oci.layout import OCILayout
from sigscope.oci.reference import parse_layout
from sigscope.scan.registry import ScanOptions, scan_image
from sigscope.sign import (
    OCI_CONFIG,
    SIMPLESIGNING_MEDIA_TYPE,
    SignOptions,
    assemble_manifest,
    build_payload,
    docker_identity,
    layer_annotations,
)
from sigscope.trust.certs import utcnow
from sigscope.trust.keys import apply_keys, load_public_key
from sigscope.verify import Policy, image_identity, verify

TAG = "v1"


async def build(layout_path: Path, signers: list[FileSigner], count: int) -> tuple[str, str]:
    """Sign the layout's image `count` times; (image digest, .sig tag)."""
    layout = OCILayout(layout_path)
    digest = (await layout.resolve(TAG)).digest
    identity = docker_identity(parse_layout(f"oci:{layout_path}:{TAG}"))
    options = SignOptions()
    layers = []
    for n in range(count):
        payload = build_payload(identity, digest, {"bench": str(n)})
        signature = signers[n % len(signers)].sign(payload)
        blob = await layout.put_blob(payload, SIMPLESIGNING_MEDIA_TYPE)
        layers.append(
            {
                "mediaType": SIMPLESIGNING_MEDIA_TYPE,
                "size": blob.size,
                "digest": blob.digest,
                "annotations": layer_annotations(signature, options),
            }
        )
    manifest, config, media_type = assemble_manifest({}, layers)
    tag = cosign.attachment_tag(digest, cosign.SIGNATURE_TAG_SUFFIX)
    await layout.put_blob(config, OCI_CONFIG)
    await layout.put_manifest(manifest, media_type, tag)
    return digest, tag


async def read_layers(layout_path: Path, tag: str) -> list[tuple[Descriptor, bytes]]:
    layout = OCILayout(layout_path)
    manifest = await layout.get_manifest(tag)
    return [(layer, await layout.get_blob(layer.digest)) for layer in manifest.layers()]


def timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--signatures", type=int, default=1000, help="signatures on the image (max 1000)")
    parser.add_argument("--keys", type=int, default=10, help="distinct ECDSA P-256 signing keys")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds; the median is reported")
    args = parser.parse_args()
    count, nkeys = args.signatures, args.keys

    with tempfile.TemporaryDirectory(prefix="sigscope-bench-") as tmp:
        workdir = Path(tmp)
        layout_path = workdir / "layout"
        testbed.build_layout(layout_path, TAG, seed="bench")
        signers = [FileSigner(generate("ecdsa-p256")) for _ in range(nkeys)]
        key_files = []
        for k, signer in enumerate(signers):
            path = workdir / f"k{k}.pub"
            path.write_bytes(public_pem(signer.private_key))
            key_files.append(str(path))
        # The keys as `--key` loads them, shared by every measurement.
        keys = [load_public_key(Path(p).read_bytes()) for p in key_files]
        first = [[keys[k], *keys[:k], *keys[k + 1 :]] for k in range(nkeys)]

        digest, tag = asyncio.run(build(layout_path, signers, count))
        layers = asyncio.run(read_layers(layout_path, tag))
        triples = [
            (
                keys[n % nkeys],
                cosign.b64(layer.annotations[cosign.SIGNATURE_ANNOTATION], "signature"),
                blob,
            )
            for n, (layer, blob) in enumerate(layers)
        ]
        image = f"oci:{layout_path}:{TAG}"
        now = utcnow()
        location = f"tag {tag}"

        def raw() -> None:
            for key, signature, payload in triples:
                key.verify(signature, payload, ECDSA(SHA256()))

        def parse_only() -> list[object]:
            return [
                cosign.parse_signature_layer(layer, blob, subject_digest=digest, location=location, now=now)
                for layer, blob in layers
            ]

        def sigscope_path(ordered: Callable[[int], list[object]]) -> Callable[[], None]:
            def run() -> None:
                for n, (layer, blob) in enumerate(layers):
                    sig = cosign.parse_signature_layer(
                        layer, blob, subject_digest=digest, location=location, now=now
                    )
                    if apply_keys(sig, ordered(n)).status is not Status.VERIFIED:  # type: ignore[arg-type]
                        raise RuntimeError(f"signature {n} did not verify: {sig.error or sig.checks}")

            return run

        async def in_process_async() -> None:
            parsed = parse_layout(image)
            layout = OCILayout(parsed.path)
            [result] = await scan_image(
                layout, TAG, source=image, repo_name="", registry="", options=ScanOptions(now=now, keys=keys)
            )
            verdict = verify(image_identity(parsed), result.digest, result.signatures, Policy())
            good = sum(s.status is Status.VERIFIED for s in result.signatures)
            if not verdict.verified or good != count:
                raise RuntimeError(f"in-process verify: {verdict.reason}; {good}/{count} verified")

        key_args = [arg for path in key_files for arg in ("--key", path)]
        cli_command = [sys.executable, "-m", "sigscope", "verify", image, *key_args, "-o", "json"]
        startup_commands = {
            "CLI start-up (`sigscope --version`)": [sys.executable, "-m", "sigscope", "--version"],
            # --version exits before the verify command's imports (aiohttp, rich, the scan stack).
            "CLI start-up (`sigscope verify --help`)": [sys.executable, "-m", "sigscope", "verify", "--help"],
        }

        def cli() -> None:
            subprocess.run(cli_command, check=True, stdout=subprocess.DEVNULL)

        def startup(command: list[str]) -> Callable[[], None]:
            return lambda: subprocess.run(command, check=True, stdout=subprocess.DEVNULL)

        startups = {name: startup(command) for name, command in startup_commands.items()}

        measurements: dict[str, Callable[[], object]] = {
            "raw cryptography verify": raw,
            "sigscope parse only (no crypto)": parse_only,
            "sigscope parse+apply_keys, right key 1st": sigscope_path(lambda n: first[n % nkeys]),
            f"sigscope parse+apply_keys, {nkeys} keys": sigscope_path(lambda n: keys),
            "in-process scan_image + verify()": lambda: asyncio.run(in_process_async()),
            "CLI `sigscope verify` (subprocess)": cli,
        }
        for run in (*measurements.values(), *startups.values()):  # warm-up and correctness check
            run()

        load_before = os.getloadavg()[0]
        print(f"load average before: {load_before:.2f} ({os.cpu_count()} cores; other processes share them)")
        print(
            f"{count} cosign signatures of one image in one oci: layout, {nkeys} ECDSA P-256 keys, "
            f"median of {args.rounds} alternating rounds\n"
        )
        samples: dict[str, list[float]] = {name: [] for name in measurements}
        startup_samples: dict[str, list[float]] = {name: [] for name in startups}
        for _ in range(args.rounds):
            for name, run in measurements.items():
                samples[name].append(timed(run))
            for name, run in startups.items():
                startup_samples[name].append(timed(run))
        seconds = {name: statistics.median(values) for name, values in samples.items()}
        rates = {name: count / elapsed for name, elapsed in seconds.items()}
        floor = rates["raw cryptography verify"]
        print(f"{'measurement':<42} {'seconds':>8} {'sigs/s':>9} {'vs raw':>7}")
        for name in measurements:
            print(f"{name:<42} {seconds[name]:>8.3f} {rates[name]:>9.0f} {rates[name] / floor:>7.2f}")
        for name, values in startup_samples.items():
            print(f"{name:<42} {statistics.median(values):>8.3f}")
        print(
            f"\n(b)/(a) right key first: {rates['sigscope parse+apply_keys, right key 1st'] / floor:.2f}"
            f" (goal >= 0.80); with {nkeys} keys in fixed order: "
            f"{rates[f'sigscope parse+apply_keys, {nkeys} keys'] / floor:.2f}"
            f" (~{(nkeys + 1) / 2:.1f} verifies per signature)"
        )
        print(
            f"(c)/(a) CLI: {rates['CLI `sigscope verify` (subprocess)'] / floor:.2f}; "
            f"in-process scan_image: {rates['in-process scan_image + verify()'] / floor:.2f}"
        )
        print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
