"""`sigscope scan registry` against a sequential reference crawler, on loopback and with added latency.

Populates a local Debian `docker-registry` with REPOS repositories x TAGS tags (each tag its own image
digest; about a third of the digests signed: cosign `.sig` manifests, Notary Project JWS signatures
in the referrers tag schema, and some with both), then in one run, per network condition, times:

- sequential: the reference crawler, one `requests` call at a time, doing per tag what sigscan does:
  HEAD the manifest, GET `sha256-<hex>.sig` (and its layer blobs when present), GET
  `/v2/<repo>/referrers/<digest>`, then the `sha256-<hex>` fallback tag (and each listed manifest
  and its layer blobs when present);
- sigscope: `python -m sigscope scan registry HOST --insecure -o ndjson --max-concurrency N`, stdout
  to /dev/null, at several N.

Both run as their own processes; wall time is measured from spawn to exit and peak RSS is that
process's own (GNU time `%M`; Linux carries a parent's RSS high-water mark into a forked child, so
ru_maxrss of our own children would start at ours). sigscope's request counts come from the same crawl
run in-process (`scan_registry` with a `RegistryClient`, reading `client.request_count`); requests per
*unsigned* tag from an in-process crawl limited to the repositories populated without any signature.

Added latency: a network namespace behind a veth with `tc netem` when the kernel has it, else a
delaying TCP proxy (bench/_latency.py); the output says which. Memory flatness: the ndjson crawl of
REPOS/4 and of all REPOS repositories (same tags each). CPU seconds of each crawler and of the
registry (and proxy) are shown too: on a small machine the registry's CPU is what bounds the crawl.

With --incremental, only the inventory's re-scan is measured instead (docs/inventory.md): a first
`scan registry --db` into a new SQLite inventory, then an unchanged re-scan, timed side by side as their
own processes (median of --rounds pairs, each pair on a fresh database); the re-scan's requests counted
in-process (the CLI's own code path: the same click parameters, ScanRecording, StoreReuse); then 1 % new
images (half of them cosign-signed) pushed and the re-scan's requests and fetched images counted again.

Usage: python bench/scan_registry.py [--repos 200] [--tags 25] [--quick] [--latency-ms 20]
       [--concurrency 16,32,64] [--seq-sample N | --full-sequential] [--latency-method auto|netns|proxy|none]
       [--incremental]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import hashlib
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import requests

# Only the standard library and requests at module level: the sequential crawler runs this file as
# its own process, and its peak RSS should be a requests crawler's, not the test bed's.

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
COSIGN_SIGNATURE = "dev.cosignproject.cosign/signature"
NOTARY_SIGNATURE = "application/vnd.cncf.notary.signature"
NOTARY_PAYLOAD = "application/vnd.cncf.notary.payload.v1+json"
JWS = "application/jose+json"
MANIFEST_ACCEPT = ", ".join(
    [
        OCI_MANIFEST,
        OCI_INDEX,
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)

PREFIX = "bench/r"
#: Repositories whose index ends in 0 or 5 get no signature at all (a fifth of them).
UNSIGNED_GLOB = f"{PREFIX}??[05]"
#: Share of tags signed in the other repositories: 0.8 x 5/12 ≈ a third overall.
SIGNED_SHARE = 5 / 12
#: Attachment and referrers-fallback tags: not images, skipped by both crawlers.
NOT_AN_IMAGE = re.compile(r"^sha256-[0-9a-f]{64}(\.(sig|att|sbom))?$")


def repo_name(index: int) -> str:
    return f"{PREFIX}{index:03d}"


def repo_unsigned(index: int) -> bool:
    return index % 5 == 0


def subset_globs(count: int) -> list[str]:
    """`--repo` globs matching exactly repo_name(0) … repo_name(count - 1)."""
    globs = [f"{PREFIX}{h}??" for h in range(count // 100)]
    hundred, rest = count // 100, count % 100
    if rest // 10:
        last = rest // 10 - 1
        globs.append(f"{PREFIX}{hundred}{'0' if last == 0 else f'[0-{last}]'}?")
    globs += [f"{PREFIX}{hundred}{rest // 10}{u}" for u in range(rest % 10)]
    return globs


def canonical(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def go_json(obj: Any) -> bytes:
    """Compact JSON in insertion order, as Go writes structs."""
    return json.dumps(obj, separators=(",", ":")).encode()


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# ----------------------------------------------------------------------------------------- signing


class Signer:
    """One ECDSA P-256 key for cosign, one for a self-signed Notary Project leaf certificate."""

    def __init__(self) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        self.cosign_key = ec.generate_private_key(ec.SECP256R1())
        self.notary_key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sigscope bench signer")])
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.notary_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1))
            .not_valid_after(now + dt.timedelta(days=30))
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CODE_SIGNING]), critical=False)
            .sign(self.notary_key, hashes.SHA256())
        )
        self.cert_der = cert.public_bytes(serialization.Encoding.DER)
        self.thumbprint = hashlib.sha256(self.cert_der).hexdigest()
        self.signing_time = now.replace(microsecond=0).strftime("%Y-%m-%dT%H:%M:%SZ")

    def cosign(self, docker_reference: str, digest: str) -> tuple[bytes, bytes, dict[str, Any]]:
        """(payload blob, config blob, .sig manifest) of a legacy cosign signature (FORMATS 1.2-1.4)."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec

        payload = go_json(
            {
                "critical": {
                    "identity": {"docker-reference": docker_reference},
                    "image": {"docker-manifest-digest": digest},
                    "type": "cosign container image signature",
                },
                "optional": None,
            }
        )
        signature = self.cosign_key.sign(payload, ec.ECDSA(hashes.SHA256()))
        payload_digest = sha256(payload)
        config = go_json(
            {
                "architecture": "",
                "created": "0001-01-01T00:00:00Z",
                "history": [{"created": "0001-01-01T00:00:00Z"}],
                "os": "",
                "rootfs": {"type": "layers", "diff_ids": [payload_digest]},
                "config": {},
            }
        )
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "size": len(config), "digest": sha256(config)},
            "layers": [
                {
                    "mediaType": SIMPLESIGNING,
                    "size": len(payload),
                    "digest": payload_digest,
                    "annotations": {COSIGN_SIGNATURE: base64.b64encode(signature).decode()},
                }
            ],
        }
        return payload, config, manifest

    def notary(self, subject: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
        """(JWS envelope, signature manifest with `subject`) as notation writes them (FORMATS 2.1-2.3)."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        protected = canonical(
            {
                "alg": "ES256",
                "crit": ["io.cncf.notary.signingScheme"],
                "cty": NOTARY_PAYLOAD,
                "io.cncf.notary.signingScheme": "notary.x509",
                "io.cncf.notary.signingTime": self.signing_time,
            }
        )
        payload = canonical({"targetArtifact": subject})
        signing_input = f"{b64url(protected)}.{b64url(payload)}".encode()
        r, s = decode_dss_signature(self.notary_key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        envelope = go_json(
            {
                "payload": b64url(payload),
                "protected": b64url(protected),
                "header": {
                    "x5c": [base64.b64encode(self.cert_der).decode()],
                    "io.cncf.notary.signingAgent": "sigscope-bench",
                },
                "signature": b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big")),
            }
        )
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": NOTARY_SIGNATURE,
            "config": {"mediaType": OCI_EMPTY, "digest": EMPTY_DIGEST, "size": 2, "data": "e30="},
            "layers": [{"mediaType": JWS, "digest": sha256(envelope), "size": len(envelope)}],
            "subject": subject,
            "annotations": {
                "io.cncf.notary.x509chain.thumbprint#S256": json.dumps([self.thumbprint]),
                "org.opencontainers.image.created": self.signing_time,
            },
        }
        return envelope, manifest


# -------------------------------------------------------------------------------------- population


@dataclass
class Population:
    repos: int
    tags: int
    seconds: float = 0.0
    requests: int = 0
    kinds: Counter[str] = field(default_factory=Counter)  # cosign / notary / both / unsigned

    @property
    def image_tags(self) -> int:
        return self.repos * self.tags

    @property
    def signed(self) -> int:
        return self.kinds["cosign"] + self.kinds["notary"] + self.kinds["both"]

    @property
    def unsigned_repos(self) -> int:
        return sum(1 for i in range(self.repos) if repo_unsigned(i))


def tag_name(index: int, tags: int) -> str:
    return f"t{index:0{max(2, len(str(tags - 1)))}d}"


def signing_plan(index: int, tags: int) -> dict[int, str]:
    """tag index → cosign / notary / both, for one repository (deterministic)."""
    if repo_unsigned(index):
        return {}
    rng = random.Random(f"sigscope-bench-{index}")
    chosen = rng.sample(range(tags), max(1, round(tags * SIGNED_SHARE)))
    return {t: rng.choices(["cosign", "notary", "both"], weights=[45, 45, 10])[0] for t in chosen}


class Pusher:
    """Blob and manifest uploads over one requests session, counted."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = requests.Session()
        self.session.trust_env = False
        self.requests = 0

    def _call(self, method: str, url: str, expect: tuple[int, ...], **kwargs: Any) -> requests.Response:
        self.requests += 1
        response = self.session.request(method, url, timeout=30, **kwargs)
        if response.status_code not in expect:
            raise RuntimeError(f"{method} {url} → {response.status_code} {response.text[:300]}")
        return response

    def blob(self, repo: str, data: bytes) -> None:
        digest = sha256(data)
        started = self._call("POST", f"{self.base}/v2/{repo}/blobs/uploads/", (202,))
        location = started.headers["Location"]
        if location.startswith("/"):
            location = self.base + location
        self._call(
            "PUT",
            f"{location}{'&' if '?' in location else '?'}digest={digest}",
            (201,),
            data=data,
            headers={"Content-Type": "application/octet-stream"},
        )

    def mount(self, repo: str, digest: str, source: str) -> None:
        self._call("POST", f"{self.base}/v2/{repo}/blobs/uploads/?mount={digest}&from={source}", (201,))

    def manifest(self, repo: str, reference: str, data: bytes, media_type: str) -> None:
        self._call(
            "PUT",
            f"{self.base}/v2/{repo}/manifests/{reference}",
            (201,),
            data=data,
            headers={"Content-Type": media_type},
        )


def populate(host: str, workdir: Path, repos: int, tags: int, threads: int = 16) -> Population:
    """One skopeo push, then per repository TAGS distinct manifests and their signatures."""
    import testbed

    started = time.perf_counter()
    population = Population(repos, tags)
    layout = workdir / "layout"
    testbed.build_layout(layout, "base", seed="scan-bench")
    first = repo_name(0)
    testbed.push_layout(layout, "base", host, first, tag_name(0, tags))
    base_manifest = json.loads(testbed.read_blob(layout, testbed.layout_digest(layout, "base")))
    shared = [base_manifest["config"]["digest"]] + [layer["digest"] for layer in base_manifest["layers"]]
    signer = Signer()
    base = f"http://{host}"
    lock = threading.Lock()

    def one(index: int) -> tuple[int, Counter[str]]:
        repo = repo_name(index)
        pusher = Pusher(base)
        kinds: Counter[str] = Counter()
        try:
            if index:
                for digest in shared:
                    pusher.mount(repo, digest, first)
            plan = signing_plan(index, tags)
            if any(kind != "cosign" for kind in plan.values()):
                pusher.blob(repo, b"{}")  # the OCI empty config of Notary signature manifests
            for t in range(tags):
                manifest = dict(base_manifest, annotations={"org.example.sigscope.bench": f"{repo}:{t}"})
                data = canonical(manifest)
                digest = sha256(data)
                pusher.manifest(repo, tag_name(t, tags), data, OCI_MANIFEST)
                kind = plan.get(t, "unsigned")
                kinds[kind] += 1
                hexpart = digest.split(":", 1)[1]
                if kind in ("cosign", "both"):
                    payload, config, sig_manifest = signer.cosign(f"{host}/{repo}", digest)
                    pusher.blob(repo, payload)
                    pusher.blob(repo, config)
                    pusher.manifest(repo, f"sha256-{hexpart}.sig", go_json(sig_manifest), OCI_MANIFEST)
                if kind in ("notary", "both"):
                    subject = {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(data)}
                    envelope, sig_manifest = signer.notary(subject)
                    pusher.blob(repo, envelope)
                    sig_bytes = go_json(sig_manifest)
                    sig_digest = sha256(sig_bytes)
                    pusher.manifest(repo, sig_digest, sig_bytes, OCI_MANIFEST)
                    index_doc = {
                        "schemaVersion": 2,
                        "mediaType": OCI_INDEX,
                        "manifests": [
                            {
                                "mediaType": OCI_MANIFEST,
                                "digest": sig_digest,
                                "size": len(sig_bytes),
                                "annotations": sig_manifest["annotations"],
                                "artifactType": NOTARY_SIGNATURE,
                            }
                        ],
                    }
                    pusher.manifest(repo, f"sha256-{hexpart}", go_json(index_doc), OCI_INDEX)
            return pusher.requests, kinds
        finally:
            pusher.session.close()

    with ThreadPoolExecutor(max_workers=threads) as pool:
        for count, kinds in pool.map(one, range(repos)):
            with lock:
                population.requests += count
                population.kinds.update(kinds)
    population.seconds = time.perf_counter() - started
    return population


# ------------------------------------------------------------------------- (a) sequential reference


def sequential_crawl(host: str, only: set[str] | None) -> dict[str, Any]:
    """What sigscan does, one request at a time. Runs in its own process (`--sequential-worker`)."""
    session = requests.Session()
    session.trust_env = False
    base = f"http://{host}"
    count = 0

    def call(method: str, path: str, accept: str | None = None) -> requests.Response:
        nonlocal count
        count += 1
        headers = {"Accept": accept} if accept else {}
        return session.request(method, path if "://" in path else base + path, headers=headers, timeout=30)

    def paged(path: str, key: str) -> list[str]:
        found: list[str] = []
        url: str | None = path
        while url:
            response = call("GET", url)
            response.raise_for_status()
            found += response.json().get(key) or []
            link = response.links.get("next", {}).get("url")
            url = requests.compat.urljoin(response.url, link) if link else None
        return found

    def blob(repo: str, digest: str) -> None:
        response = call("GET", f"/v2/{repo}/blobs/{digest}")
        if response.status_code != 200 or sha256(response.content) != digest:
            raise RuntimeError(f"blob {repo}@{digest}: HTTP {response.status_code} or digest mismatch")

    started = time.perf_counter()
    repos = paged("/v2/_catalog?n=1000", "repositories")
    if only is not None:
        repos = [r for r in repos if r in only]
    tags_seen = signed = signatures = 0
    for repo in repos:
        for tag in paged(f"/v2/{repo}/tags/list", "tags"):
            if NOT_AN_IMAGE.match(tag):
                continue
            head = call("HEAD", f"/v2/{repo}/manifests/{tag}", MANIFEST_ACCEPT)
            head.raise_for_status()
            digest = head.headers["Docker-Content-Digest"]
            hexpart = digest.split(":", 1)[1]
            found = 0
            sig = call("GET", f"/v2/{repo}/manifests/sha256-{hexpart}.sig", MANIFEST_ACCEPT)
            if sig.status_code == 200:
                for layer in sig.json().get("layers") or []:
                    blob(repo, layer["digest"])
                    found += 1
            listed: list[dict[str, Any]] | None = None
            api = call("GET", f"/v2/{repo}/referrers/{digest}", OCI_INDEX)
            if api.status_code == 200 and api.headers.get("Content-Type", "").startswith(OCI_INDEX):
                listed = api.json().get("manifests") or []
            else:
                fallback = call("GET", f"/v2/{repo}/manifests/sha256-{hexpart}", MANIFEST_ACCEPT)
                if fallback.status_code == 200 and fallback.json().get("mediaType") == OCI_INDEX:
                    listed = fallback.json().get("manifests") or []
            for descriptor in listed or []:
                referrer = call("GET", f"/v2/{repo}/manifests/{descriptor['digest']}", MANIFEST_ACCEPT)
                referrer.raise_for_status()
                for layer in referrer.json().get("layers") or []:
                    blob(repo, layer["digest"])
                    found += 1
            tags_seen += 1
            signed += bool(found)
            signatures += found
    return {
        "requests": count,
        "repos": len(repos),
        "tags": tags_seen,
        "signed": signed,
        "signatures": signatures,
        "inner_seconds": time.perf_counter() - started,
    }


# ----------------------------------------------------------------------------------- measurement


@dataclass
class Measured:
    wall: float
    rss_kib: int
    cpu: float  # user + system seconds of the process itself
    code: int
    stdout: str
    stderr: str


class ServerCPU:
    """User + system CPU seconds that the registry (and proxy) processes spend, read from /proc."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.tick = os.sysconf("SC_CLK_TCK")

    def total(self) -> float:
        seconds = 0.0
        for pid in self.pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            seconds += (int(fields[11]) + int(fields[12])) / self.tick  # utime, stime
        return seconds


TIME = Path("/usr/bin/time")


def run_measured(cmd: list[str], timeout: float, capture_stdout: bool) -> Measured:
    """Run one process; wall from spawn to exit, peak RSS of that process alone.

    Linux carries a process's RSS high-water mark across exec, and a child forked from this (large)
    process starts with ours; so the measured command is started by GNU time (a small process) and its
    `%M` is read. Without /usr/bin/time, os.wait4's ru_maxrss is used and may include our own RSS.
    """
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile() as rss,
    ):
        stdout = out if capture_stdout else subprocess.DEVNULL
        wrapped = [str(TIME), "-f", "%M %U %S", "-o", rss.name, *cmd] if TIME.exists() else cmd
        started = time.perf_counter()
        proc = subprocess.Popen(
            wrapped, stdin=subprocess.DEVNULL, stdout=stdout, stderr=err, start_new_session=True
        )
        timer = threading.Timer(timeout, os.killpg, (proc.pid, signal.SIGKILL))
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:  # interrupted: the child is in its own session, so end it ourselves
            os.killpg(proc.pid, signal.SIGKILL)
            os.wait4(proc.pid, 0)
            raise
        finally:
            timer.cancel()
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        rss_kib, cpu = usage.ru_maxrss, usage.ru_utime + usage.ru_stime
        if TIME.exists():
            lines = Path(rss.name).read_text().splitlines()
            fields = lines[-1].split() if lines else []
            if len(fields) == 3 and fields[0].isdigit():
                rss_kib, cpu = int(fields[0]), float(fields[1]) + float(fields[2])
        measured = Measured(wall, rss_kib, cpu, proc.returncode, out.read().decode(), err.read().decode())
    if measured.code != 0:
        killed = " (killed at the time limit)" if measured.code == -9 else ""
        raise RuntimeError(f"{cmd[:6]} exited {measured.code}{killed}: {measured.stderr[-800:]}")
    return measured


def sigscope_cmd(
    host: str, concurrency: int, output: str = "ndjson", patterns: list[str] | None = None
) -> list[str]:
    cmd = [sys.executable, "-m", "sigscope", "scan", "registry", host, "--insecure", "-o", output]
    cmd += ["--max-concurrency", str(concurrency)]
    for pattern in patterns or []:
        cmd += ["--repo", pattern]
    return cmd


def run_sequential(host: str, only: list[str] | None, timeout: float) -> tuple[Measured, dict[str, Any]]:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--sequential-worker", host]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(only, f)
    try:
        measured = run_measured([*cmd, "--only-file", f.name], timeout, capture_stdout=True)
    finally:
        os.unlink(f.name)
    return measured, json.loads(measured.stdout)


async def _inprocess(host: str, concurrency: int, patterns: list[str]) -> dict[str, Any]:
    from sigscope.oci.client import RegistryClient, RegistryOptions
    from sigscope.scan.registry import Progress, ScanOptions, scan_registry

    options = RegistryOptions(insecure=True, use_auth_files=False, max_concurrency=concurrency)
    # as `sigscope scan registry` sets it (cli/scan.py)
    scan_options = ScanOptions(
        now=dt.datetime.now(dt.UTC),
        repo_patterns=patterns,
        repo_concurrency=max(1, min(32, concurrency // 2)),
    )
    tags = images = signed = errors = 0
    formats: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    started = time.perf_counter()
    async with RegistryClient(host, options) as client:
        async for result in scan_registry(client, "", scan_options, Progress()):
            images += 1
            tags += len(result.tags)
            signed += result.signed
            errors += bool(result.error)
            for signature in result.signatures:
                formats[str(signature.format)] += 1
                statuses[str(signature.status)] += 1
        requests_made = client.request_count
    return {
        "seconds": time.perf_counter() - started,
        "requests": requests_made,
        "tags": tags,
        "images": images,
        "signed": signed,
        "errors": errors,
        "formats": dict(formats),
        "statuses": dict(statuses),
    }


def inprocess(host: str, concurrency: int, patterns: list[str] | None = None) -> dict[str, Any]:
    return asyncio.run(_inprocess(host, concurrency, patterns or []))


# ------------------------------------------------------------------------------- incremental re-scan


async def _inprocess_db(host: str, concurrency: int, db: str) -> dict[str, Any]:
    """One `scan registry HOST --insecure --db DB` as the CLI runs it, in-process to count requests."""
    from sigscope.cli.record import ScanRecording
    from sigscope.cli.scan import scan_registry_cmd
    from sigscope.oci.client import RegistryClient, RegistryOptions
    from sigscope.scan.registry import Progress, ScanOptions, scan_registry
    from sigscope.store.reuse import StoreReuse

    argv = [host, "--insecure", "--db", db, "--max-concurrency", str(concurrency)]
    params = scan_registry_cmd.make_context("registry", argv).params  # the CLI's own parameters
    recording = ScanRecording.start(db, kind="registry", target=host, source=host, params=params)
    now = dt.datetime.now(dt.UTC)
    options = ScanOptions(
        now=now,
        repo_concurrency=max(1, min(32, concurrency // 2)),
        fingerprint=True,
        reuse=StoreReuse(recording.inventory, recording.trust_fingerprint, None, now),
    )
    started = time.perf_counter()
    registry_options = RegistryOptions(insecure=True, use_auth_files=False, max_concurrency=concurrency)
    async with RegistryClient(host, registry_options) as client:
        async for result in scan_registry(client, "", options, Progress()):
            recording.add_image(result)
        requests_made = client.request_count
    totals = dict(recording.totals)
    recording.finish()
    return {"seconds": time.perf_counter() - started, "requests": requests_made, **totals}


def push_new(host: str, population: Population, count: int) -> list[str]:
    """`count` new image tags spread over the repositories, every other one cosign-signed."""
    base = f"http://{host}"
    session = requests.Session()
    session.trust_env = False
    first = repo_name(0)
    response = session.get(
        f"{base}/v2/{first}/manifests/{tag_name(0, population.tags)}",
        headers={"Accept": MANIFEST_ACCEPT},
        timeout=30,
    )
    response.raise_for_status()
    base_manifest = response.json()
    signer = Signer()
    pusher = Pusher(base)
    pushed = []
    for n in range(count):
        repo = repo_name((n * 7) % population.repos)
        manifest = dict(base_manifest, annotations={"org.example.sigscope.bench": f"{repo}:new{n}"})
        data = canonical(manifest)
        digest = sha256(data)
        pusher.manifest(repo, f"new{n:03d}", data, OCI_MANIFEST)
        if n % 2 == 0:
            payload, config, sig_manifest = signer.cosign(f"{host}/{repo}", digest)
            pusher.blob(repo, payload)
            pusher.blob(repo, config)
            pusher.manifest(
                repo, f"sha256-{digest.split(':', 1)[1]}.sig", go_json(sig_manifest), OCI_MANIFEST
            )
        pushed.append(digest)
    session.close()
    pusher.session.close()
    return pushed


def incremental(host: str, workdir: Path, population: Population, args: argparse.Namespace) -> None:
    tags = population.image_tags
    conc = args.default_concurrency
    first_walls: list[float] = []
    rescan_walls: list[float] = []
    db = ""
    for round_ in range(args.rounds):
        db = str(workdir / f"inventory-{round_}.db")
        cmd = [*sigscope_cmd(host, conc), "--db", db]
        first_walls.append(run_measured(cmd, args.sigscope_timeout, capture_stdout=False).wall)
        rescan_walls.append(run_measured(cmd, args.sigscope_timeout, capture_stdout=False).wall)
        print(f"  round {round_ + 1}: first scan {first_walls[-1]:.2f} s, re-scan {rescan_walls[-1]:.2f} s")
    first_wall, rescan_wall = statistics.median(first_walls), statistics.median(rescan_walls)
    fresh = asyncio.run(_inprocess_db(host, conc, str(workdir / "counted.db")))
    unchanged = asyncio.run(_inprocess_db(host, conc, db))
    new = max(1, tags // 100)
    push_new(host, population, new)
    after = asyncio.run(_inprocess_db(host, conc, db))
    speedup = first_wall / rescan_wall
    per_tag = unchanged["requests"] / tags
    print(f"\n=== incremental re-scan: {tags} image tags, --max-concurrency {conc}, SQLite inventory")
    print(
        f"  first scan --db      wall {first_wall:6.2f} s (median of {args.rounds})  "
        f"requests {fresh['requests']}"
    )
    print(
        f"  unchanged re-scan    wall {rescan_wall:6.2f} s (median of {args.rounds})  requests "
        f"{unchanged['requests']} ({per_tag:.3f} per tag), reused {unchanged['reused']}, "
        f"fetched {unchanged['fetched']}"
    )
    print(
        f"  after +{new} images   requests {after['requests']} "
        f"(+{after['requests'] - unchanged['requests']}), "
        f"fetched {after['fetched']} images, reused {after['reused']}"
    )
    print(f"  speed-up x{speedup:.2f} — target ≥ x1.8: {verdict(speedup >= 1.8)}")
    print(f"  requests per tag {per_tag:.3f} — target ≤ 1.1: {verdict(per_tag <= 1.1)}")
    print(f"  only the new images fetched: {verdict(after['fetched'] == new and unchanged['fetched'] == 0)}")


# ------------------------------------------------------------------------------------------ report


def mib(kib: int) -> str:
    return f"{kib / 1024:.0f} MiB"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


@dataclass
class Row:
    crawler: str
    wall: float
    requests: int
    tags: int
    rss_kib: int
    cpu: float
    server_cpu: float
    note: str = ""


def print_table(title: str, rows: list[Row], server: str) -> None:
    print(f"\n{title}")
    print(
        f"  {'crawler':<28} {'wall s':>9} {'requests':>9} {'req/tag':>8} {'peak RSS':>9} {'CPU s':>7} "
        f"{server + ' CPU s':>15}  note"
    )
    for row in rows:
        print(
            f"  {row.crawler:<28} {row.wall:>9.2f} {row.requests:>9} {row.requests / row.tags:>8.2f} "
            f"{mib(row.rss_kib):>9} {row.cpu:>7.2f} {row.server_cpu:>15.2f}  {row.note}"
        )


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


@dataclass
class Condition:
    name: str
    host: str
    sequential_wall: float
    sequential_note: str
    sigscope: dict[int, float]
    unsigned_per_tag: float


def run_condition(
    name: str,
    host: str,
    population: Population,
    args: argparse.Namespace,
    *,
    seq_sample: int | None,
    full_seq_requests: int | None,
    server_pids: list[int],
    server: str,
) -> tuple[Condition, int]:
    """Measure both crawlers against `host`; returns the result and the sequential request count."""
    from _latency import measure_rtt

    server_cpu = ServerCPU(server_pids)
    print(f"\n=== {name}: {host} (median GET /v2/ on a warm connection: {measure_rtt(host):.2f} ms)")
    print(f"load average before: {load()}")
    total_tags = population.image_tags

    # sigscope in-process first (also warms the registry): request counts.
    full = inprocess(host, args.default_concurrency)
    unsigned = inprocess(host, args.default_concurrency, [UNSIGNED_GLOB])
    print(
        f"sigscope in-process (--max-concurrency {args.default_concurrency}): {full['requests']} requests, "
        f"{full['tags']} tags, {full['images']} images, {full['signed']} signed "
        f"(populated {population.signed}), {full['errors']} errors, {full['seconds']:.2f} s"
    )
    print(f"  signatures by format {full['formats']}, by status {full['statuses']}")
    unsigned_per_tag = unsigned["requests"] / max(1, unsigned["tags"])
    print(
        f"  unsigned repositories only (--repo '{UNSIGNED_GLOB}', {population.unsigned_repos} repos): "
        f"{unsigned['requests']} requests for {unsigned['tags']} tags = {unsigned_per_tag:.3f} per "
        f"unsigned tag ({unsigned['signed']} signed found)"
    )

    # (a) sequential, whole registry or a random sample of repositories.
    only: list[str] | None = None
    if seq_sample is not None and seq_sample < population.repos:
        rng = random.Random(f"sample-{seq_sample}")
        only = sorted(repo_name(i) for i in rng.sample(range(population.repos), seq_sample))
    cpu_before = server_cpu.total()
    measured, seq = run_sequential(host, only, args.sequential_timeout)
    seq_server_cpu = server_cpu.total() - cpu_before
    if only is None:
        seq_wall, seq_requests, seq_cpu = measured.wall, seq["requests"], measured.cpu
        seq_note = f"found {seq['signed']} signed of {seq['tags']} tags"
    else:
        assert full_seq_requests is not None
        scale = full_seq_requests / seq["requests"]
        seq_wall, seq_requests, seq_cpu = measured.wall * scale, full_seq_requests, measured.cpu * scale
        seq_server_cpu *= scale
        seq_note = (
            f"EXTRAPOLATED: measured {measured.wall:.1f} s for {seq['requests']} requests on a random "
            f"{seq['repos']} of {population.repos} repos ({seq['tags']} tags, {seq['signed']} signed); "
            f"x {full_seq_requests}/{seq['requests']} (request count of the full crawl)"
        )
    rows = [
        Row(
            "sequential (requests)",
            seq_wall,
            seq_requests,
            total_tags,
            measured.rss_kib,
            seq_cpu,
            seq_server_cpu,
            seq_note,
        )
    ]

    # (b) sigscope CLI at each concurrency; rounds interleave the concurrencies so drift hits all alike.
    runs: dict[int, list[tuple[Measured, float]]] = {c: [] for c in args.concurrency}
    for _ in range(args.rounds):
        for concurrency in args.concurrency:
            cpu_before = server_cpu.total()
            run = run_measured(sigscope_cmd(host, concurrency), args.sigscope_timeout, capture_stdout=False)
            runs[concurrency].append((run, server_cpu.total() - cpu_before))
    walls: dict[int, float] = {}
    for concurrency, done in runs.items():
        walls[concurrency] = statistics.median(run.wall for run, _ in done)
        lines = done[-1][0].stderr.strip().splitlines()
        note = f"stderr: {lines[-1] if lines else ''!r}"
        if args.rounds > 1:
            spread = f"{min(run.wall for run, _ in done):.2f}-{max(run.wall for run, _ in done):.2f}"
            note = f"median of {args.rounds} ({spread}); " + note
        rows.append(
            Row(
                f"sigscope -o ndjson, conc {concurrency}",
                walls[concurrency],
                full["requests"],
                total_tags,
                max(run.rss_kib for run, _ in done),
                statistics.median(run.cpu for run, _ in done),
                statistics.median(cpu for _, cpu in done),
                note,
            )
        )
    print(f"load average after:  {load()}")
    print_table(
        f"{name} — {population.repos} repos x {population.tags} tags = {total_tags} tags", rows, server
    )
    print(
        f"  (sigscope request counts: the in-process crawl at --max-concurrency {args.default_concurrency})"
    )
    return Condition(name, host, seq_wall, seq_note, walls, unsigned_per_tag), seq["requests"]


def memory_flatness(host: str, population: Population, args: argparse.Namespace) -> None:
    subset = max(1, population.repos // 4)
    print(
        f"\n=== peak RSS against the number of tags (loopback, --max-concurrency {args.default_concurrency})"
    )
    print(f"load average before: {load()}")
    print(f"  {'output':<8} {'repos':>5} {'tags':>6} {'wall s':>8} {'peak RSS':>9}")
    results: dict[tuple[str, int], int] = {}
    for output in ("ndjson", "json"):
        for count in (subset, population.repos):
            patterns = subset_globs(count) if count < population.repos else []
            run = run_measured(
                sigscope_cmd(host, args.default_concurrency, output, patterns),
                args.sigscope_timeout,
                capture_stdout=False,
            )
            results[(output, count)] = run.rss_kib
            tags = count * population.tags
            print(f"  {output:<8} {count:>5} {tags:>6} {run.wall:>8.2f} {mib(run.rss_kib):>9}")
    growth = results[("ndjson", population.repos)] / results[("ndjson", subset)]
    flat = verdict(growth <= 1.10)
    print(
        f"  ndjson peak RSS {population.repos} vs {subset} repos: x{growth:.2f} for "
        f"x{population.repos / subset:.0f} tags; target flat (we call <= x1.10 flat): {flat}"
    )
    print("  (-o json keeps every result until the end by design; shown for contrast)")
    print(f"load average after:  {load()}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--repos", type=int, default=200)
    parser.add_argument("--tags", type=int, default=25, help="tags (each its own digest) per repository")
    parser.add_argument("--quick", action="store_true", help="smoke run: 40 repos x 10 tags, full sequential")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="added round-trip time (default 20)")
    parser.add_argument(
        "--latency-method",
        choices=("auto", "netns", "proxy", "none"),
        default="auto",
        help="auto: netem in a network namespace if the kernel has it, else the TCP proxy",
    )
    parser.add_argument("--concurrency", default="16,32,64", help="sigscope --max-concurrency values")
    parser.add_argument("--default-concurrency", type=int, default=32, help="for request counts and RSS runs")
    parser.add_argument(
        "--seq-sample",
        type=int,
        default=None,
        help="with latency, run the sequential crawler on this many random repositories and extrapolate "
        "(default: a quarter of them)",
    )
    parser.add_argument("--full-sequential", action="store_true", help="no sampling, even with latency")
    parser.add_argument("--rounds", type=int, default=3, help="sigscope runs per concurrency (median)")
    parser.add_argument("--sequential-timeout", type=float, default=1800.0)
    parser.add_argument("--sigscope-timeout", type=float, default=600.0)
    parser.add_argument(
        "--incremental", action="store_true", help="measure only the --db re-scan (see above)"
    )
    parser.add_argument("--sequential-worker", metavar="HOST", help=argparse.SUPPRESS)
    parser.add_argument("--only-file", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.sequential_worker:
        only = json.loads(Path(args.only_file).read_text()) if args.only_file else None
        print(json.dumps(sequential_crawl(args.sequential_worker, set(only) if only is not None else None)))
        return

    if args.quick:
        args.repos, args.tags = 40, 10
    if not 1 <= args.repos <= 1000 or args.tags < 1:
        parser.error("--repos must be 1..1000 and --tags ≥ 1")
    args.concurrency = [int(c) for c in args.concurrency.split(",")]
    seq_sample = None if args.full_sequential or args.quick else (args.seq_sample or max(1, args.repos // 4))

    import testbed
    from _latency import latency_target

    print(f"load average at start: {load()} ({os.cpu_count()} CPUs, shared)")
    with tempfile.TemporaryDirectory(prefix="sigscope-bench-scan-") as tmp:
        workdir = Path(tmp)
        handle = testbed.start_registry(workdir / "registry")
        try:
            population = populate(handle.host, workdir, args.repos, args.tags)
            kinds = population.kinds
            print(
                f"populated {handle.host}: {args.repos} repos x {args.tags} tags = "
                f"{population.image_tags} image digests in {population.seconds:.1f} s "
                f"({population.requests} requests + one skopeo push)"
            )
            print(
                f"  signed {population.signed} ({population.signed / population.image_tags:.0%}): "
                f"cosign .sig {kinds['cosign']}, Notary JWS via referrers tag {kinds['notary']}, "
                f"both {kinds['both']}; {population.unsigned_repos} repos ('{UNSIGNED_GLOB}') unsigned"
            )
            os.sync()  # let the registry's writes reach the disk before anything is timed
            time.sleep(5)
            if args.incremental:
                incremental(handle.host, workdir, population, args)
                return
            loopback, seq_requests = run_condition(
                "loopback",
                handle.host,
                population,
                args,
                seq_sample=None,
                full_seq_requests=None,
                server_pids=[handle.process.pid],
                server="registry",
            )
            memory_flatness(handle.host, population, args)
            latency: Condition | None = None
            method = "none"
            if args.latency_method != "none":
                assert handle.config_file is not None
                target = latency_target(
                    handle.host, handle.process.pid, handle.config_file, args.latency_ms, args.latency_method
                )
                with target as (host, method, pids):
                    print(f"\nlatency method: {method}")
                    latency, _ = run_condition(
                        f"+{args.latency_ms:g} ms RTT",
                        host,
                        population,
                        args,
                        seq_sample=seq_sample,
                        full_seq_requests=seq_requests,
                        server_pids=pids,
                        server="registry+proxy" if "proxy" in method else "registry",
                    )
        finally:
            handle.stop()

    print("\n=== ratios (sequential wall / sigscope wall) and targets")
    for condition, target in ((loopback, 3.0), (latency, 20.0)):
        if condition is None:
            continue
        ratios = {c: condition.sequential_wall / w for c, w in condition.sigscope.items()}
        cells = ", ".join(f"conc {c}: x{r:.1f} {verdict(r >= target)}" for c, r in ratios.items())
        extrapolated = " (sequential extrapolated)" if "EXTRAPOLATED" in condition.sequential_note else ""
        print(f"  {condition.name:<14} target ≥ x{target:g}: {cells}{extrapolated}")
    print(
        "  requests per unsigned tag (in-process, unsigned repos only): "
        f"loopback {loopback.unsigned_per_tag:.3f}"
        + (f", latency {latency.unsigned_per_tag:.3f}" if latency else "")
        + f" — target ≤ 1.2: {verdict(loopback.unsigned_per_tag <= 1.2)}"
    )
    print(f"  latency method: {method}")
    from sigscope.oci.client import RegistryOptions

    rss_how = (
        "GNU time %M of that process alone" if TIME.exists() else "os.wait4 ru_maxrss (may include ours)"
    )
    notes = [
        "wall time: spawn to exit of each crawler's own process (python -m sigscope ...; this file in",
        "  --sequential-worker mode for the reference crawler, which imports only requests).",
        f"peak RSS: {rss_how}; CPU s: its user+system time; registry/proxy CPU s:",
        "  /proc utime+stime deltas of the registry (and proxy) processes during the run.",
        "sigscope requests: client.request_count of the same crawl run in-process (scan_registry with a",
        "  RegistryClient, repo_concurrency as the CLI sets it); the CLI makes the same requests.",
        "requests per unsigned tag: that in-process crawl limited to the "
        f"{population.unsigned_repos} repositories populated",
        f"  without any signature ('{UNSIGNED_GLOB}'); it includes the catalog, one tags/list per repository",
        "  and the one referrers-API probe per client.",
        f"CLI default --max-concurrency: {RegistryOptions().max_concurrency}.",
    ]
    print("\n=== method\n" + "\n".join("  " + line for line in notes))
    print(f"load average at end: {load()}")


if __name__ == "__main__":
    main()
