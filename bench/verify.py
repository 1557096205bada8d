"""Cosign signatures verified per second: sigscope next to raw `cryptography` verifies, in one run.

Builds one image in an OCI layout (no network), signs it N times with K ECDSA P-256 keys (signature i
by key i % K) and stores all N simple-signing layers on its ONE `sha256-<hex>.sig` manifest, assembled
with sigscope's own signing functions (`build_payload`, `FileSigner.sign`, `layer_annotations`,
`assemble_manifest`, `OCILayout.put_*`). Every payload is what `sigscope sign -a bench=<i>` writes, so
each layer has a blob of its own. Two more layouts hold the same image signed N times by ONE of the K
keys (the last one given), and N times by the K keys over ONE shared payload (what `cosign sign --key`
without annotations writes: cosign appends a layer per signature over the same blob). Then it times:

- raw: `public_key.verify(der_sig, payload, ECDSA(SHA256()))` on prepared (key, sig, payload)
  triples with the signer's key: one verify per signature, the floor;
- parse only: `cosign.parse_signature_layer` on the in-memory layers, no trust (no crypto: key-only
  signatures are skipped there), to show what the parsing costs on its own;
- sigscope, signer's key, one thread: `parse_signature_layer` + `apply_keys(sig, [signer's key])`, one
  layer after the other, and the same in scan_image's order (every layer parsed as it is fetched, then
  trust applied to the list), and that followed by the `verify()` policy: sigscope's own cost next to
  one verify per signature;
- scan_image's trust step (the >= 80 % goal): the layers parsed, then verified ahead on
  `verify_threads()` threads (`trust.keys.verify_ahead`; cryptography releases the GIL while it
  verifies) and recorded by `apply_keys`, as scan/registry.py does it; with one key (every signature by
  it), then with the `verify()` policy, and with the K keys taking turns;
- sigscope, K keys: `--key K1 ... --key KK` with signers taking turns: no key hint in the signature, so
  on average (K + 1) / 2 verifies each; and with the N signatures by one key (given last), where the
  keys that verified most are tried first;
- shared payload: the signer's key on the one-payload layout (the payload is parsed once);
- warm: the signer's-key run again without forgetting what was verified (the same signatures met a
  second time, e.g. in a mirrored repository); every other row starts cold (caches cleared);
- in-process: `scan_image` on the layout + `verify()` (what `sigscope verify` runs, minus the CLI),
  with the K keys, and with the one signer's key on its layout; `get_blob` of every layer alone, as the
  source's share (file reads + digest checks; a registry's round trips in the field);
- CLI: `python -m sigscope verify oci:LAYOUT:v1 --key K1 ... -o json` as a subprocess, nothing
  subtracted; `python -m sigscope --version` is timed alongside as its start-up cost, and
  `python -m sigscope verify --help` as the start-up including the verify command's imports.

Rounds alternate between the measurements; each figure is the median of its per-round ratio to raw.
The goal rows are then timed again in PAIRS adjacent (raw, sigscope) runs, the order alternating, and
their median ratio printed with the middle half of the ratios: the load of this shared machine drifts
between rounds more than between two runs 0.1 s apart. The CLI rows run byte-compiled modules (as an
install does) and the setup's objects are frozen out of the garbage collector's way.
Usage: python bench/verify.py [--signatures N] [--keys K] [--rounds R] [--pairs PAIRS]
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import gc
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import testbed
from cryptography.hazmat.primitives.asymmetric.ec import ECDSA
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.hashes import SHA256

import sigscope
from sigscope.formats import cosign
from sigscope.keys import FileSigner, generate, public_pem
from sigscope.model import Descriptor, Signature, Status
from sigscope.oci.layout import OCILayout
from sigscope.oci.reference import parse_layout
from sigscope.scan.registry import ScanOptions, scan_image, verify_threads
from sigscope.sign import (
    OCI_CONFIG,
    SIMPLESIGNING_MEDIA_TYPE,
    SignOptions,
    assemble_manifest,
    build_payload,
    docker_identity,
    layer_annotations,
)
from sigscope.trust import keys as trust_keys
from sigscope.trust.certs import utcnow
from sigscope.trust.keys import apply_keys, judge_ahead, load_public_key
from sigscope.verify import Policy, image_identity, verify

TAG = "v1"


async def build(
    layout_path: Path, signers: list[FileSigner], count: int, *, distinct: bool = True
) -> tuple[str, str]:
    """Sign the layout's image `count` times, signer n % len(signers) for layer n; (digest, .sig tag).

    `distinct`: a payload of its own per layer (`-a bench=<n>`), else one payload for every layer.
    """
    testbed.build_layout(layout_path, TAG, seed="bench")
    layout = OCILayout(layout_path)
    digest = (await layout.resolve(TAG)).digest
    identity = docker_identity(parse_layout(f"oci:{layout_path}:{TAG}"))
    options = SignOptions()
    layers = []
    for n in range(count):
        payload = build_payload(identity, digest, {"bench": str(n)} if distinct else {})
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


def forget() -> None:
    """Start cold: sigscope remembers parsed payloads and verified signatures within a process, and
    every round repeats the same signatures."""
    cosign.clear_caches()
    trust_keys.clear_caches()


def timed(run: Callable[[], object], *, cold: bool = True) -> float:
    if cold:
        forget()
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--signatures", type=int, default=1000, help="signatures on the image (max 1000)")
    parser.add_argument("--keys", type=int, default=10, help="distinct ECDSA P-256 signing keys")
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds; the median is reported")
    parser.add_argument("--pairs", type=int, default=31, help="adjacent (raw, sigscope) pairs per goal row")
    args = parser.parse_args()
    count, nkeys = args.signatures, args.keys

    with tempfile.TemporaryDirectory(prefix="sigscope-bench-") as tmp:
        workdir = Path(tmp)
        layout_path = workdir / "layout"
        signers = [FileSigner(generate("ecdsa-p256")) for _ in range(nkeys)]
        key_files = []
        for k, signer in enumerate(signers):
            path = workdir / f"k{k}.pub"
            path.write_bytes(public_pem(signer.private_key))
            key_files.append(str(path))
        # The keys as `--key` loads them, shared by every measurement.
        keys = [load_public_key(Path(p).read_bytes()) for p in key_files]
        own = [[keys[k]] for k in range(nkeys)]

        digest, tag = asyncio.run(build(layout_path, signers, count))
        layers = asyncio.run(read_layers(layout_path, tag))
        one_path = workdir / "one-signer"
        one_digest, one_tag = asyncio.run(build(one_path, signers[-1:], count))
        one_layers = asyncio.run(read_layers(one_path, one_tag))
        shared_path = workdir / "shared-payload"
        shared_digest, shared_tag = asyncio.run(build(shared_path, signers, count, distinct=False))
        shared_layers = asyncio.run(read_layers(shared_path, shared_tag))
        assert one_digest == digest == shared_digest and len({b for _, b in shared_layers}) == 1
        triples = [
            (
                keys[n % nkeys],
                cosign.b64(layer.annotations[cosign.SIGNATURE_ANNOTATION], "signature"),
                blob,
            )
            for n, (layer, blob) in enumerate(layers)
        ]
        image = f"oci:{layout_path}:{TAG}"
        one_image = f"oci:{one_path}:{TAG}"
        now = utcnow()
        location = f"tag {tag}"
        Layers = list[tuple[Descriptor, bytes]]

        def raw() -> None:
            for key, signature, payload in triples:
                key.verify(signature, payload, ECDSA(SHA256()))

        def parse_only() -> list[object]:
            return [
                cosign.parse_signature_layer(layer, blob, subject_digest=digest, location=location, now=now)
                for layer, blob in layers
            ]

        def interleaved(source: Layers, ordered: Callable[[int], list[object]]) -> Callable[[], None]:
            def run() -> None:
                for n, (layer, blob) in enumerate(source):
                    sig = cosign.parse_signature_layer(
                        layer, blob, subject_digest=digest, location=location, now=now
                    )
                    if apply_keys(sig, ordered(n)).status is not Status.VERIFIED:  # type: ignore[arg-type]
                        raise RuntimeError(f"signature {n} did not verify: {sig.error or sig.checks}")

            return run

        def parse_all(source: Layers) -> list[Signature]:
            return [
                cosign.parse_signature_layer(layer, blob, subject_digest=digest, location=location, now=now)
                for layer, blob in source
            ]

        def judge_all(image_ref: str, sigs: list[Signature]) -> None:
            verdict = verify(image_ref, digest, sigs, Policy())
            if not verdict.verified or sum(j.satisfied for j in verdict.signatures) != len(sigs):
                raise RuntimeError(f"verify(): {verdict.reason}")

        def batched(source: Layers, ordered: Callable[[int], list[object]]) -> Callable[[], None]:
            # What scan_image does: every layer is parsed as discovery fetches it, then trust is applied
            # to the whole list (scan/registry.py _trust). Keeping the verifies together also keeps
            # OpenSSL's P-256 tables in cache, which interleaved Python parsing evicts.
            def run() -> None:
                sigs = parse_all(source)
                for n, sig in enumerate(sigs):
                    if apply_keys(sig, ordered(n)).status is not Status.VERIFIED:  # type: ignore[arg-type]
                        raise RuntimeError(f"signature {n} did not verify: {sig.error or sig.checks}")

            return run

        threads = verify_threads()

        def ahead(
            source: Layers, trusted: Sequence[PublicKeyTypes], *, judge: str | None = None
        ) -> Callable[[], None]:
            # scan_image's trust step (trust.keys.judge_ahead, as scan/registry.py runs it): the
            # signatures verified ahead on `threads` threads (cryptography lets go of the GIL while
            # verifying), then apply_keys finds each in the verified-signature memory; `judge`: then the
            # policy for that image reference.
            def run() -> None:
                sigs = judge_ahead(parse_all(source), trusted, threads, lambda s: apply_keys(s, trusted))
                if judge is not None:
                    judge_all(judge, sigs)
                elif any(sig.status is not Status.VERIFIED for sig in sigs):
                    raise RuntimeError("a signature did not verify")

            return run

        policy_image = image_identity(parse_layout(image))

        def judged(source: Layers, ordered: Callable[[int], list[object]]) -> Callable[[], None]:
            # scan_image's order and then the policy: what `sigscope verify` does with fetched layers.
            def run() -> None:
                sigs = parse_all(source)
                for n, sig in enumerate(sigs):
                    apply_keys(sig, ordered(n))  # type: ignore[arg-type]
                judge_all(policy_image, sigs)

            return run

        def in_process(where: str, trusted: list[object]) -> Callable[[], None]:
            async def run() -> None:
                parsed = parse_layout(where)
                layout = OCILayout(parsed.path)
                options = ScanOptions(now=now, keys=trusted)  # type: ignore[arg-type]
                [result] = await scan_image(
                    layout, TAG, source=where, repo_name="", registry="", options=options
                )
                verdict = verify(image_identity(parsed), result.digest, result.signatures, Policy())
                good = sum(s.status is Status.VERIFIED for s in result.signatures)
                if not verdict.verified or good != count:
                    raise RuntimeError(f"in-process verify: {verdict.reason}; {good}/{count} verified")

            return lambda: asyncio.run(run())

        async def blob_reads_async() -> None:
            layout = OCILayout(layout_path)
            manifest = await layout.get_manifest(tag)
            for layer in manifest.layers():
                await layout.get_blob(layer.digest)

        # An installed sigscope runs from byte-compiled modules (pip compiles them); a source checkout
        # run with PYTHONDONTWRITEBYTECODE (as on these machines) would recompile every module on every
        # start, which no user pays. Compile once so the CLI rows time what an install runs.
        compileall.compile_dir(str(Path(sigscope.__file__).parent), quiet=1)

        def cli_run(command: list[str]) -> Callable[[], None]:
            return lambda: subprocess.run(command, check=True, stdout=subprocess.DEVNULL)

        key_args = [arg for path in key_files for arg in ("--key", path)]
        module = [sys.executable, "-m", "sigscope"]
        startups = {
            "CLI start-up (`sigscope --version`)": cli_run([*module, "--version"]),
            # --version exits before the verify command's imports (aiohttp, rich, the scan stack).
            "CLI start-up (`sigscope verify --help`)": cli_run([*module, "verify", "--help"]),
        }

        signer_key = "parse+apply, signer's key (1 key)"
        signer_key_batched = "parse all, then apply, signer's key"
        signer_key_judged = "parse all, apply, verify() policy, signer's key"
        in_process_1 = "in-process scan_image+verify, 1 key"
        threaded_1 = f"scan_image's trust step, 1 key, {threads} threads"
        threaded_1_judged = f"the same, then verify() policy, {threads} threads"
        threaded_k = f"scan_image's trust step, {nkeys} keys in turn, {threads} threads"
        k_keys = f"parse+apply, {nkeys} keys, signers in turn"
        in_process_k = f"in-process scan_image+verify, {nkeys} keys"
        cli_k = f"CLI `sigscope verify`, {nkeys} keys"
        measurements: dict[str, Callable[[], object]] = {
            "raw cryptography verify": raw,
            "parse only (no crypto)": parse_only,
            signer_key: interleaved(layers, lambda n: own[n % nkeys]),
            signer_key_batched: batched(layers, lambda n: own[n % nkeys]),
            signer_key_judged: judged(layers, lambda n: own[n % nkeys]),
            threaded_1: ahead(one_layers, keys[-1:]),
            threaded_1_judged: ahead(one_layers, keys[-1:], judge=image_identity(parse_layout(one_image))),
            threaded_k: ahead(layers, keys),
            "shared payload, signer's key (as scan)": batched(shared_layers, lambda n: own[n % nkeys]),
            k_keys: interleaved(layers, lambda n: keys),
            f"parse+apply, {nkeys} keys, one signer": interleaved(one_layers, lambda n: keys),
            in_process_1: in_process(one_image, keys[-1:]),
            in_process_k: in_process(image, keys),
            "layout get_blob of every layer only": lambda: asyncio.run(blob_reads_async()),
            "CLI `sigscope verify`, 1 key": cli_run(
                [*module, "verify", one_image, "--key", key_files[-1], "-o", "json"]
            ),
            cli_k: cli_run([*module, "verify", image, *key_args, "-o", "json"]),
        }
        # Not cleared before it runs: the signatures the previous round verified are remembered.
        warm = "same signatures again (warm), signer's key"
        warm_run = batched(layers, lambda n: own[n % nkeys])
        for run in (*measurements.values(), *startups.values()):  # warm-up and correctness check
            forget()
            run()

        # What the setup built (three layouts' layers and blobs) is not what a `sigscope verify` process
        # holds: kept out of the collector's way, so the rows do not pay for scanning it.
        gc.freeze()
        load_before = os.getloadavg()[0]
        print(f"load average before: {load_before:.2f} ({os.cpu_count()} cores; other processes share them)")
        print(
            f"{count} cosign signatures of one image in one oci: layout, {nkeys} ECDSA P-256 keys, "
            f"median of {args.rounds} alternating rounds\n"
        )
        samples: dict[str, list[float]] = {name: [] for name in (*measurements, warm)}
        startup_samples: dict[str, list[float]] = {name: [] for name in startups}
        for _ in range(args.rounds):
            for name, run in measurements.items():
                samples[name].append(timed(run))
                if name == signer_key_batched:
                    samples[warm].append(timed(warm_run, cold=False))
            for name, run in startups.items():
                startup_samples[name].append(timed(run))
        # The goal rows again, each timed right next to a raw run (the order alternating, so neither side
        # always gets the warmer cache), many times: a shared machine's load drifts between rounds, and
        # adjacent pairs see the same load.
        goal_rows = (signer_key_batched, threaded_1, threaded_1_judged, in_process_1)
        paired: dict[str, list[float]] = {name: [] for name in goal_rows}
        for n in range(args.pairs):
            for name in goal_rows:
                if n % 2:
                    ours = timed(measurements[name])
                    theirs = timed(raw)
                else:
                    theirs = timed(raw)
                    ours = timed(measurements[name])
                paired[name].append(theirs / ours)
        seconds = {name: statistics.median(values) for name, values in samples.items()}
        rates = {name: count / elapsed for name, elapsed in seconds.items()}
        # Ratios per round (each measurement next to the raw one of the same round), then the median:
        # the load of a shared machine moves between rounds far more than within one.
        raw_samples = samples["raw cryptography verify"]
        vs_raw = {
            name: statistics.median(r / v for r, v in zip(raw_samples, values, strict=True))
            for name, values in samples.items()
        }
        print(f"{'measurement':<44} {'seconds':>8} {'sigs/s':>9} {'vs raw':>7}")
        for name in samples:
            print(f"{name:<44} {seconds[name]:>8.3f} {rates[name]:>9.0f} {vs_raw[name]:>7.2f}")
        for name, values in startup_samples.items():
            print(f"{name:<44} {statistics.median(values):>8.3f}")
        print(f"\nadjacent pairs with raw ({args.pairs} each; median, and the middle half of the ratios):")
        for name, ratios in paired.items():
            q1, median, q3 = statistics.quantiles(ratios, n=4)
            print(f"  {name:<50} {median:.2f}  [{q1:.2f}-{q3:.2f}]")
        print(
            f"\ngoal (>= 0.80): {vs_raw[threaded_1]:.2f} for scan_image's trust step on {threads} threads,"
            f" {vs_raw[threaded_1_judged]:.2f} with the verify() policy; on one thread"
            f" {vs_raw[signer_key_batched]:.2f} (scan order) and {vs_raw[signer_key]:.2f} (layer by layer)"
        )
        print(
            f"{nkeys} keys, signers in turn: {vs_raw[k_keys]:.2f} on one thread, {vs_raw[threaded_k]:.2f}"
            f" on {threads} (~{(nkeys + 1) / 2:.1f} verifies per signature); in-process {nkeys} keys:"
            f" {vs_raw[in_process_k]:.2f}; CLI {nkeys} keys: {vs_raw[cli_k]:.2f}"
        )
        print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
