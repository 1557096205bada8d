"""Build OCI image layouts by hand (no Docker daemon) and push them to a test registry."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

from .registry import MANIFEST_ACCEPT, OCI_INDEX, OCI_MANIFEST

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(obj: Any) -> bytes:
    """Compact JSON with sorted keys (how this test bed serialises manifests and configs)."""
    return json.dumps(obj, separators=(",", ":"), sort_keys=True).encode()


def _write_blob(layout: Path, data: bytes) -> dict[str, Any]:
    digest = sha256_digest(data)
    blob_dir = layout / "blobs" / "sha256"
    blob_dir.mkdir(parents=True, exist_ok=True)
    path = blob_dir / digest.split(":", 1)[1]
    if not path.exists():
        path.write_bytes(data)
    return {"digest": digest, "size": len(data)}


def make_layer(seed: str, architecture: str = "amd64") -> tuple[bytes, str]:
    """A deterministic gzip tar layer. Returns (compressed bytes, diff_id of the uncompressed tar)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        files = {
            "etc/sigscope-seed": f"{seed}\n".encode(),
            "etc/sigscope-arch": f"{architecture}\n".encode(),
        }
        dir_info = tarfile.TarInfo("etc")
        dir_info.type = tarfile.DIRTYPE
        dir_info.mode = 0o755
        dir_info.mtime = 0
        tar.addfile(dir_info)
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(content))
    tar_bytes = raw.getvalue()
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0) as gz:
        gz.write(tar_bytes)
    return out.getvalue(), sha256_digest(tar_bytes)


def _write_image(layout: Path, seed: str, architecture: str, os_name: str = "linux") -> dict[str, Any]:
    """Write layer, config and manifest blobs; returns the manifest descriptor."""
    layer, diff_id = make_layer(seed, architecture)
    layer_desc = {"mediaType": OCI_LAYER_GZIP, **_write_blob(layout, layer)}
    config = {
        "architecture": architecture,
        "os": os_name,
        "config": {"Labels": {"org.example.sigscope.seed": seed}},
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created_by": f"sigscope testbed seed={seed}"}],
    }
    config_desc = {"mediaType": OCI_CONFIG, **_write_blob(layout, canonical_json(config))}
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config_desc,
        "layers": [layer_desc],
    }
    return {"mediaType": OCI_MANIFEST, **_write_blob(layout, canonical_json(manifest))}


def build_layout(path: Path, tag: str, *, seed: str, architectures: list[str] | None = None) -> str:
    """Write (or add ``tag`` to) an OCI image layout at ``path``; return the digest ``tag`` points at.

    One architecture (default ``amd64``) gives a single image manifest; several give one manifest per
    platform plus an OCI image index, and the tag points at the index. Same seed → same digests.
    """
    path.mkdir(parents=True, exist_ok=True)
    archs = architectures or ["amd64"]
    if len(archs) == 1:
        desc = _write_image(path, seed, archs[0])
    else:
        entries = []
        for arch in archs:
            d = _write_image(path, seed, arch)
            entries.append({**d, "platform": {"architecture": arch, "os": "linux"}})
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
        desc = {"mediaType": OCI_INDEX, **_write_blob(path, canonical_json(index))}
    (path / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    index_file = path / "index.json"
    top: dict[str, Any] = {"schemaVersion": 2, "manifests": []}
    if index_file.exists():
        top = json.loads(index_file.read_text())
    top["manifests"] = [
        m for m in top.get("manifests", []) if m.get("annotations", {}).get(REF_NAME) != tag
    ] + [{**desc, "annotations": {REF_NAME: tag}}]
    index_file.write_text(json.dumps(top, indent=1))
    return str(desc["digest"])


def layout_digest(layout: Path, tag: str) -> str:
    """Digest that ``tag`` points at in an OCI layout."""
    top = json.loads((layout / "index.json").read_text())
    for m in top["manifests"]:
        if m.get("annotations", {}).get(REF_NAME) == tag:
            return str(m["digest"])
    raise KeyError(f"tag {tag!r} not in {layout}/index.json")


def read_blob(layout: Path, digest: str) -> bytes:
    return (layout / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()


def _session(verify: bool | str = True, auth: tuple[str, str] | None = None) -> requests.Session:
    s = requests.Session()
    s.trust_env = False  # REQUESTS_CA_BUNDLE etc. are set on these machines
    s.verify = verify
    if auth:
        s.auth = auth
    return s


def push_layout(
    layout: Path,
    tag: str,
    host: str,
    repo: str,
    dest_tag: str | None = None,
    *,
    tls_verify: bool = False,
    creds: str | None = None,
    cert_dir: Path | None = None,
    timeout: float = 60.0,
) -> None:
    """``skopeo copy --all --preserve-digests oci:LAYOUT:TAG docker://HOST/REPO:DEST_TAG``.

    ``creds`` is ``user:password``; with ``tls_verify`` pass ``cert_dir`` (a directory with ``ca.crt``) for a
    private CA. Raises RuntimeError with skopeo's stderr on failure.
    """
    cmd = [
        "skopeo",
        "copy",
        "--insecure-policy",
        "--all",
        "--preserve-digests",
        "--retry-times=2",
        f"--dest-tls-verify={'true' if tls_verify else 'false'}",
    ]
    if cert_dir is not None:
        cmd.append(f"--dest-cert-dir={cert_dir}")
    if creds:
        cmd.append(f"--dest-creds={creds}")
    else:
        cmd.append("--dest-no-creds")
    cmd += [f"oci:{layout}:{tag}", f"docker://{host}/{repo}:{dest_tag or tag}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        shown = [c if not c.startswith("--dest-creds=") else "--dest-creds=***" for c in cmd]
        raise RuntimeError(f"skopeo failed ({proc.returncode}): {' '.join(shown)}\n{proc.stderr}")


def _put_manifests(
    items: list[tuple[str, str, bytes, str]],
    *,
    threads: int,
    scheme: str,
    verify: bool | str,
    auth: tuple[str, str] | None,
    host: str,
) -> None:
    """PUT (repo, tag, manifest bytes, media type) items with ``threads`` workers, one session each."""
    local = threading.local()
    sessions: list[requests.Session] = []
    lock = threading.Lock()

    def session() -> requests.Session:
        s: requests.Session | None = getattr(local, "s", None)
        if s is None:
            s = _session(verify, auth)
            local.s = s
            with lock:
                sessions.append(s)
        return s

    def put(item: tuple[str, str, bytes, str]) -> None:
        repo, tag, data, media_type = item
        r = session().put(
            f"{scheme}://{host}/v2/{repo}/manifests/{tag}",
            data=data,
            headers={"Content-Type": media_type},
            timeout=30,
        )
        if r.status_code != 201:
            raise RuntimeError(f"PUT {repo}:{tag} → {r.status_code} {r.text[:500]}")

    try:
        with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
            for _ in pool.map(put, items):
                pass
    finally:
        for s in sessions:
            s.close()


def put_tags(
    host: str,
    repo: str,
    manifest_bytes: bytes,
    media_type: str,
    tags: list[str],
    *,
    threads: int = 8,
    scheme: str = "http",
    verify: bool | str = True,
    auth: tuple[str, str] | None = None,
) -> None:
    """PUT one manifest under many tags in parallel (its blobs must already be in ``repo``).

    ``auth`` is Basic auth (htpasswd registries only); ``scheme="https"`` with ``verify=CA_FILE`` for TLS.
    """
    _put_manifests(
        [(repo, tag, manifest_bytes, media_type) for tag in tags],
        threads=threads,
        scheme=scheme,
        verify=verify,
        auth=auth,
        host=host,
    )


def _upload_blob(session: requests.Session, base: str, repo: str, data: bytes) -> str:
    digest = sha256_digest(data)
    r = session.post(f"{base}/v2/{repo}/blobs/uploads/", timeout=30)
    if r.status_code != 202:
        raise RuntimeError(f"blob upload start {repo} → {r.status_code} {r.text[:300]}")
    location = r.headers["Location"]
    if location.startswith("/"):
        location = base + location
    sep = "&" if "?" in location else "?"
    r = session.put(
        f"{location}{sep}digest={digest}",
        data=data,
        headers={"Content-Type": "application/octet-stream"},
        timeout=30,
    )
    if r.status_code != 201:
        raise RuntimeError(f"blob upload {repo} {digest} → {r.status_code} {r.text[:300]}")
    return digest


def _mount_blob(session: requests.Session, base: str, repo: str, digest: str, source: str) -> None:
    r = session.post(f"{base}/v2/{repo}/blobs/uploads/?mount={digest}&from={source}", timeout=30)
    if r.status_code != 201:
        raise RuntimeError(f"blob mount {digest} {source}→{repo} → {r.status_code} {r.text[:300]}")


def push_many(
    host: str,
    repos: int,
    tags_per_repo: int,
    workdir: Path,
    *,
    prefix: str = "bench/repo",
    threads: int = 8,
) -> dict[str, str]:
    """Fill a plain-HTTP registry with ``repos`` repositories x ``tags_per_repo`` tags.

    skopeo pushes one real image (``{prefix}-0000:t0000``) once; every repository then gets its own image
    (shared layer mounted cross-repository, a per-repo config so each digest is distinct) PUT under
    ``t0000``…``tNNNN``. Returns repository → manifest digest.
    """
    layout = workdir / "push-many-layout"
    build_layout(layout, "base", seed="push-many")
    first = f"{prefix}-0000"
    push_layout(layout, "base", host, first, "t0000")
    base_manifest = json.loads(read_blob(layout, layout_digest(layout, "base")))
    layer_digest = base_manifest["layers"][0]["digest"]
    base_config = json.loads(read_blob(layout, base_manifest["config"]["digest"]))
    tags = [f"t{i:04d}" for i in range(tags_per_repo)]
    base = f"http://{host}"

    def prepare(index: int) -> tuple[str, str, bytes]:
        repo = f"{prefix}-{index:04d}"
        config = json.loads(json.dumps(base_config))
        config["config"]["Labels"]["org.example.sigscope.repo"] = repo
        config_bytes = canonical_json(config)
        with _session() as s:
            if index != 0:
                _mount_blob(s, base, repo, layer_digest, first)
            _upload_blob(s, base, repo, config_bytes)
        manifest = json.loads(json.dumps(base_manifest))
        manifest["config"] = {"mediaType": OCI_CONFIG, "digest": sha256_digest(config_bytes)}
        manifest["config"]["size"] = len(config_bytes)
        manifest_bytes = canonical_json(manifest)
        return repo, sha256_digest(manifest_bytes), manifest_bytes

    with ThreadPoolExecutor(max_workers=threads) as pool:
        prepared = list(pool.map(prepare, range(repos)))
    items = [(repo, tag, data, OCI_MANIFEST) for repo, _, data in prepared for tag in tags]
    _put_manifests(items, threads=threads, scheme="http", verify=True, auth=None, host=host)
    return {repo: digest for repo, digest, _ in prepared}


def get_manifest(
    url: str, repo: str, reference: str, *, verify: bool | str = True, headers: dict[str, str] | None = None
) -> requests.Response:
    """GET a manifest with an Accept header that includes the OCI types."""
    with _session(verify) as s:
        return s.get(
            f"{url}/v2/{repo}/manifests/{reference}",
            headers={"Accept": MANIFEST_ACCEPT, **(headers or {})},
            timeout=30,
        )
