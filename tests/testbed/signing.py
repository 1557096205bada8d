"""Real signatures made by real peers: cosign-format (Debian 13 skopeo 1.18), GPG simple signing (stock skopeo
1.9.3 + gnupg) and Notary Project vectors, pushed into a real registry (see /work/shared/TESTBED.md).

- :func:`ensure_skopeo13` unpacks trixie's skopeo with ``scripts/install-skopeo-trixie.sh`` (cached under
  ``~/.cache/sigscope/skopeo-trixie``); Debian 12's skopeo has sigstore disabled by a Debian patch.
- :func:`sign_cosign` / :func:`sign_cosign_existing` write cosign's ``sha256-<hex>.sig`` tag (one layer
  per signature). Note containers/image's flavour of the payload: ``docker-reference`` is the full pushed
  reference *with tag* and ``optional`` carries ``creator``/``timestamp``; its config blob has no
  ``history``.
- :class:`GpgHome` + :func:`sign_gpg` write lookaside ``<repo>@sha256=<hex>/signature-N`` files.
- :func:`build_signed_registry` fills one registry with all of it (the ``signed_registry`` fixture, the demo).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, TypeVar

import yaml

from .images import _session, build_layout, layout_digest, push_layout
from .notation_vectors import NotationPush, push_notation_vector, vectors_available
from .registry import MANIFEST_ACCEPT, RegistryHandle, start_registry

REPO_ROOT = Path(__file__).resolve().parents[2]
INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install-skopeo-trixie.sh"

_T = TypeVar("_T")

COSIGN_SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
COSIGN_SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"


class PeerMissing(RuntimeError):
    """A signing peer (trixie skopeo, stock skopeo, gpg) is not available; the message says how to get it."""


def _run(
    cmd: list[str],
    *,
    env: dict[str, str] | None = None,
    timeout: float = 120.0,
    cwd: Path | None = None,
    input: bytes | None = None,
) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(
        cmd,
        capture_output=True,
        timeout=timeout,
        env=env,
        cwd=cwd,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr.decode(errors='replace')}"
        )
    return proc


# -- skopeo 1.18 from Debian trixie --------------------------------------------------------------------------


def default_skopeo13_dir() -> Path:
    """Where the install script puts trixie's skopeo by default."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "sigscope" / "skopeo-trixie"


def skopeo13() -> str | None:
    """Path of the trixie skopeo wrapper if installed (``SIGSCOPE_SKOPEO13`` overrides), else None."""
    override = os.environ.get("SIGSCOPE_SKOPEO13")
    candidate = Path(override) if override else default_skopeo13_dir() / "skopeo"
    if candidate.is_file() and os.access(candidate, os.X_OK):
        return str(candidate)
    return None


_ENSURED: str | None = None


def skopeo_version(skopeo: str) -> tuple[int, int, int]:
    out = _run([skopeo, "--version"], timeout=30).stdout.decode()
    # "skopeo version 1.18.0" (possibly followed by " commit: …")
    words = out.split()
    version = words[2] if len(words) >= 3 and words[:2] == ["skopeo", "version"] else ""
    parts = version.split("+")[0].split("-")[0].split(".")
    try:
        major, minor, patch = (int(p) for p in [*parts, "0", "0"][:3])
    except ValueError as exc:
        raise RuntimeError(f"cannot parse {skopeo} --version output: {out!r}") from exc
    return major, minor, patch


def ensure_skopeo13(timeout: float = 600.0) -> str:
    """The trixie skopeo wrapper, installing it with ``scripts/install-skopeo-trixie.sh`` if needed (cached).

    Raises :class:`PeerMissing` when ``SIGSCOPE_SKOPEO13`` points at nothing usable or the install fails
    (e.g. no route to the Debian mirror).
    """
    global _ENSURED
    if _ENSURED is not None:
        return _ENSURED
    override = os.environ.get("SIGSCOPE_SKOPEO13")
    path = skopeo13()
    if override and path is None:
        raise PeerMissing(f"SIGSCOPE_SKOPEO13={override} is not an executable file")
    if path is None:
        if not INSTALL_SCRIPT.is_file():
            raise PeerMissing(f"{INSTALL_SCRIPT} missing")
        proc = subprocess.run(
            ["bash", str(INSTALL_SCRIPT), str(default_skopeo13_dir())],
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
        )
        if proc.returncode != 0:
            raise PeerMissing(
                f"installing Debian trixie skopeo failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}"
            )
        path = proc.stdout.strip().splitlines()[-1]
    try:
        version = skopeo_version(path)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as exc:
        raise PeerMissing(f"{path} does not run: {exc}") from exc
    if version < (1, 10, 0):
        raise PeerMissing(f"{path} is skopeo {'.'.join(map(str, version))}; sigstore signing needs >= 1.10")
    _ENSURED = path
    return path


def stock_skopeo() -> str:
    """Debian 12's ``skopeo`` (1.9.3: simple signing works, sigstore is disabled)."""
    path = shutil.which("skopeo")
    if path is None:
        raise PeerMissing("skopeo not installed (apt-get install -y skopeo; scripts/setup.sh does this)")
    return path


# -- registry helpers ----------------------------------------------------------------------------------------


def cosign_sig_tag(digest: str) -> str:
    """cosign's signature tag for ``digest``: ``sha256-<hex>.sig``."""
    algo, _, hexpart = digest.partition(":")
    return f"{algo}-{hexpart}.sig"


def manifest_digest(host: str, repo: str, reference: str) -> str:
    """Digest the plain-HTTP registry at ``host`` reports for ``repo:reference`` (HEAD)."""
    with _session() as s:
        r = s.head(
            f"http://{host}/v2/{repo}/manifests/{reference}", headers={"Accept": MANIFEST_ACCEPT}, timeout=30
        )
    if r.status_code != 200:
        raise RuntimeError(f"HEAD {repo}:{reference} → {r.status_code}")
    return str(r.headers["Docker-Content-Digest"])


def fetch_manifest(host: str, repo: str, reference: str) -> dict[str, Any] | None:
    """JSON of ``repo:reference`` on the plain-HTTP registry at ``host``; None on 404."""
    with _session() as s:
        r = s.get(
            f"http://{host}/v2/{repo}/manifests/{reference}", headers={"Accept": MANIFEST_ACCEPT}, timeout=30
        )
    if r.status_code == 404:
        return None
    r.raise_for_status()
    result: dict[str, Any] = r.json()
    return result


def fetch_blob(host: str, repo: str, digest: str) -> bytes:
    with _session() as s:
        r = s.get(f"http://{host}/v2/{repo}/blobs/{digest}", timeout=30)
    r.raise_for_status()
    return r.content


def cosign_signature_layers(host: str, repo: str, digest: str) -> list[dict[str, Any]]:
    """Layers of the ``.sig`` manifest for ``digest`` (empty when there is none)."""
    manifest = fetch_manifest(host, repo, cosign_sig_tag(digest))
    return list(manifest.get("layers", [])) if manifest else []


def write_registries_d(
    directory: Path,
    *,
    host: str | None = None,
    lookaside_dir: Path | None = None,
    sigstore_attachments: bool = True,
) -> Path:
    """A registries.d directory (one ``sigscope.yaml``) for skopeo's ``--registries.d``.

    ``sigstore_attachments`` sets ``use-sigstore-attachments`` (cosign ``.sig`` tags) for every registry;
    ``host`` + ``lookaside_dir`` add ``lookaside``/``lookaside-staging`` ``file://`` URLs for that registry
    (the host entry repeats ``use-sigstore-attachments``: c/image uses the most precise scope only). Stock
    skopeo 1.9.3 and trixie's 1.18 both read this file.
    """
    directory.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {}
    if sigstore_attachments:
        config["default-docker"] = {"use-sigstore-attachments": True}
    if host is not None and lookaside_dir is not None:
        url = lookaside_dir.resolve().as_uri()
        entry: dict[str, Any] = {"lookaside": url, "lookaside-staging": url}
        if sigstore_attachments:
            entry["use-sigstore-attachments"] = True
        config["docker"] = {host: entry}
    (directory / "sigscope.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return directory


# -- cosign format (skopeo 1.18) -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CosignKey:
    """A cosign key pair written by ``skopeo generate-sigstore-key`` (``ENCRYPTED COSIGN PRIVATE KEY``)."""

    private_key: Path
    public_key: Path
    passphrase: str
    passphrase_file: Path


def _passphrase_file(directory: Path, passphrase: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="passphrase-", dir=directory)
    with os.fdopen(fd, "w") as f:
        f.write(passphrase)
    return Path(name)


def generate_sigstore_key(skopeo: str, prefix: Path, passphrase: str) -> tuple[Path, Path]:
    """``skopeo generate-sigstore-key --output-prefix PREFIX --passphrase-file F``.

    Returns (PREFIX.private, PREFIX.pub); existing files at PREFIX are replaced.
    """
    prefix.parent.mkdir(parents=True, exist_ok=True)
    private, public = Path(f"{prefix}.private"), Path(f"{prefix}.pub")
    for p in (private, public):
        p.unlink(missing_ok=True)
    pfile = _passphrase_file(prefix.parent, passphrase)
    try:
        _run(
            [skopeo, "generate-sigstore-key", "--output-prefix", str(prefix), "--passphrase-file", str(pfile)]
        )
    finally:
        pfile.unlink(missing_ok=True)
    if not private.is_file() or not public.is_file():
        raise RuntimeError(f"skopeo generate-sigstore-key wrote no {private} / {public}")
    return private, public


def make_cosign_key(
    skopeo: str, directory: Path, name: str = "cosign", passphrase: str = "sigscope"
) -> CosignKey:
    """Generate a key pair ``directory/NAME.{private,pub}`` plus ``NAME.passphrase``."""
    private, public = generate_sigstore_key(skopeo, directory / name, passphrase)
    pfile = directory / f"{name}.passphrase"
    pfile.write_text(passphrase)
    pfile.chmod(0o600)
    return CosignKey(private, public, passphrase, pfile)


def _sign_cosign_cmd(
    skopeo13: str, private_key: Path, passphrase_file: Path, registries_d: Path, src: str, dest: str
) -> list[str]:
    return [
        skopeo13,
        "copy",
        "--insecure-policy",
        "--registries.d",
        str(registries_d),
        "--preserve-digests",
        "--retry-times=2",
        "--dest-tls-verify=false",
        "--dest-no-creds",
        "--sign-by-sigstore-private-key",
        str(private_key),
        "--sign-passphrase-file",
        str(passphrase_file),
        src,
        dest,
    ]


def sign_cosign(
    skopeo13: str,
    layout: Path,
    layout_tag: str,
    host: str,
    repo: str,
    tag: str,
    private_key: Path,
    passphrase: str,
    workdir: Path,
) -> str:
    """Push ``oci:LAYOUT:TAG`` to ``HOST/REPO:TAG`` (plain HTTP) while signing it in cosign format.

    Uses ``--all``: for an index skopeo 1.18 signs the index **and every child manifest** (one ``.sig`` tag
    each); use :func:`sign_cosign_existing` on an already-pushed index to sign the index digest only.
    Checks that ``sha256-<hex>.sig`` exists afterwards. Returns the signed digest.
    """
    digest = layout_digest(layout, layout_tag)
    before = len(cosign_signature_layers(host, repo, digest))
    workdir.mkdir(parents=True, exist_ok=True)
    registries_d = write_registries_d(Path(tempfile.mkdtemp(prefix="registries.d.cosign-", dir=workdir)))
    pfile = _passphrase_file(workdir, passphrase)
    try:
        cmd = _sign_cosign_cmd(
            skopeo13,
            private_key,
            pfile,
            registries_d,
            f"oci:{layout}:{layout_tag}",
            f"docker://{host}/{repo}:{tag}",
        )
        cmd.insert(2, "--all")
        _run(cmd)
    finally:
        pfile.unlink(missing_ok=True)
    after = len(cosign_signature_layers(host, repo, digest))
    if after != before + 1:
        raise RuntimeError(
            f"{repo}:{tag}: {cosign_sig_tag(digest)} has {after} layers, expected {before + 1}"
        )
    return digest


def push_signed_image(
    skopeo13: str,
    host: str,
    repo: str,
    private_key: Path,
    passphrase: str,
    workdir: Path,
    *,
    seed: str | None = None,
    tag: str = "1.0",
) -> str:
    """A fresh image (digest from `seed`) pushed to `repo:tag` and signed by skopeo; returns the digest."""
    layout = workdir / "layout"
    build_layout(layout, "v1", seed=seed or f"sigscope/{repo}")
    return sign_cosign(skopeo13, layout, "v1", host, repo, tag, private_key, passphrase, workdir / "work")


def sign_cosign_existing(
    skopeo13: str,
    host: str,
    repo: str,
    tag: str,
    private_key: Path,
    passphrase: str,
    workdir: Path,
) -> str:
    """Add a cosign-format signature to the already-pushed ``HOST/REPO:TAG`` (plain HTTP).

    ``skopeo copy --multi-arch index-only docker://X docker://X`` with signing: the manifest (digest
    preserved) is re-put and the ``.sig`` manifest gets **one more layer** (confirmed: skopeo reads the
    existing ``.sig`` manifest and appends; the same key signing twice still appends, since the payload
    carries a timestamp).
    For an index only the index digest is signed. Returns the signed digest.
    """
    digest = manifest_digest(host, repo, tag)
    before = len(cosign_signature_layers(host, repo, digest))
    workdir.mkdir(parents=True, exist_ok=True)
    registries_d = write_registries_d(Path(tempfile.mkdtemp(prefix="registries.d.cosign-", dir=workdir)))
    pfile = _passphrase_file(workdir, passphrase)
    ref = f"docker://{host}/{repo}:{tag}"
    try:
        cmd = _sign_cosign_cmd(skopeo13, private_key, pfile, registries_d, ref, ref)
        cmd[2:2] = ["--multi-arch", "index-only", "--src-tls-verify=false", "--src-no-creds"]
        _run(cmd)
    finally:
        pfile.unlink(missing_ok=True)
    if manifest_digest(host, repo, tag) != digest:
        raise RuntimeError(f"{repo}:{tag} changed digest while being signed")
    after = len(cosign_signature_layers(host, repo, digest))
    if after != before + 1:
        raise RuntimeError(
            f"{repo}:{tag}: {cosign_sig_tag(digest)} has {after} layers, expected {before + 1}"
        )
    return digest


# -- GPG simple signing (stock skopeo 1.9.3) -----------------------------------------------------------------


class GpgHome:
    """A throw-away ``GNUPGHOME`` with one batch-generated, unprotected signing key.

    ``algo`` is ``"ed25519"`` (fast) or ``"rsa"`` (RSA-2048). Use as a context manager or call :meth:`close`,
    which stops the home's gpg-agent and deletes the home if this object created it.
    """

    def __init__(
        self,
        uid: str = "sigscope test signer <signer@sigscope.test>",
        *,
        algo: Literal["ed25519", "rsa"] = "ed25519",
        home: Path | None = None,
    ) -> None:
        if shutil.which("gpg") is None:
            raise PeerMissing("gpg not installed (apt-get install -y gnupg)")
        self.uid = uid
        self.algo = algo
        self._owned = home is None
        # short path: gpg-agent's socket path must stay under ~108 bytes
        self.home = Path(tempfile.mkdtemp(prefix="sigscope-gpg-")) if home is None else home
        self.home.mkdir(parents=True, exist_ok=True)
        self.home.chmod(0o700)
        self._closed = False
        try:
            self.fingerprint = self._generate()
        except BaseException:
            self.close()
            raise
        #: long key id (last 16 hex digits of the fingerprint)
        self.key_id = self.fingerprint[-16:]

    @property
    def env(self) -> dict[str, str]:
        """Environment for subprocesses (gpg, skopeo) that should use this home."""
        return {**os.environ, "GNUPGHOME": str(self.home)}

    def gpg(
        self, *args: str, input: bytes | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[bytes]:
        """Run ``gpg --batch ARGS`` in this home."""
        cmd = ["gpg", "--batch", "--no-tty", *args]
        if check:
            return _run(cmd, env=self.env, input=input, timeout=60)
        return subprocess.run(
            cmd,
            capture_output=True,
            env=self.env,
            input=input,
            timeout=60,
            stdin=None if input is not None else subprocess.DEVNULL,
        )

    def _generate(self) -> str:
        if self.algo == "ed25519":
            key = "Key-Type: eddsa\nKey-Curve: ed25519\n"
        elif self.algo == "rsa":
            key = "Key-Type: RSA\nKey-Length: 2048\n"
        else:
            raise ValueError(f"unknown algo {self.algo!r}")
        name, _, email = self.uid.partition(" <")
        params = f"%no-protection\n{key}Key-Usage: sign\nName-Real: {name}\n"
        if email:
            params += f"Name-Email: {email.rstrip('>')}\n"
        params += "Expire-Date: 0\n%commit\n"
        self.gpg("--gen-key", input=params.encode())
        listing = self.gpg("--with-colons", "--list-secret-keys").stdout.decode()
        fprs = [line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")]
        if not fprs:
            raise RuntimeError(f"gpg generated no key:\n{listing}")
        return fprs[0]

    def export_public(self, path: Path, *, armor: bool = False) -> Path:
        """Write the public key (binary keyring, or ASCII-armoured) to ``path`` — a ``signedBy`` keyPath."""
        args = ["--armor"] if armor else []
        data = self.gpg(*args, "--export", self.fingerprint).stdout
        if not data:
            raise RuntimeError("gpg --export wrote nothing")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return path

    def verify(self, signature: Path) -> str:
        """``gpg --verify`` a signed message; returns the status lines. Raises unless GOODSIG + VALIDSIG."""
        proc = self.gpg("--status-fd", "1", "--verify", str(signature), check=False)
        status = proc.stdout.decode(errors="replace")
        if proc.returncode != 0 or "[GNUPG:] GOODSIG" not in status or "[GNUPG:] VALIDSIG" not in status:
            raise RuntimeError(
                f"gpg --verify {signature} failed:\n{status}\n{proc.stderr.decode(errors='replace')}"
            )
        return status

    def decrypt(self, signature: Path) -> bytes:
        """The signed content of a signed message (the simple-signing JSON)."""
        return self.gpg("--decrypt", str(signature)).stdout

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if shutil.which("gpgconf") is not None:
            subprocess.run(
                ["gpgconf", "--kill", "gpg-agent"],
                env=self.env,
                capture_output=True,
                timeout=30,
                stdin=subprocess.DEVNULL,
            )
        if self._owned:
            shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> GpgHome:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def lookaside_signatures(lookaside_dir: Path, repo: str, digest: str) -> list[Path]:
    """``DIR/<repo>@sha256=<hex>/signature-1..N`` that exist (read until the first gap, like c/image)."""
    base = lookaside_dir / f"{repo}@{digest.replace(':', '=', 1)}"
    found: list[Path] = []
    while (base / f"signature-{len(found) + 1}").is_file():
        found.append(base / f"signature-{len(found) + 1}")
    return found


def sign_gpg(
    layout: Path,
    layout_tag: str,
    host: str,
    repo: str,
    tag: str,
    gpg: GpgHome,
    lookaside_dir: Path,
    workdir: Path,
) -> Path:
    """Push ``oci:LAYOUT:TAG`` to ``HOST/REPO:TAG`` with stock skopeo ``--sign-by FPR`` (simple signing).

    The registries.d written (and returned) maps ``HOST`` to ``lookaside``/``lookaside-staging`` =
    ``file://LOOKASIDE_DIR`` (skopeo 1.9.3 accepts these keys; the deprecated ``sigstore`` /
    ``sigstore-staging`` are not needed). Checks that ``LOOKASIDE_DIR/<repo>@sha256=<hex>/signature-N``
    appeared.
    """
    skopeo = stock_skopeo()
    digest = layout_digest(layout, layout_tag)
    before = len(lookaside_signatures(lookaside_dir, repo, digest))
    lookaside_dir.mkdir(parents=True, exist_ok=True)
    registries_d = write_registries_d(
        workdir / "registries.d.gpg", host=host, lookaside_dir=lookaside_dir, sigstore_attachments=False
    )
    _run(
        [
            skopeo,
            "copy",
            "--insecure-policy",
            "--registries.d",
            str(registries_d),
            "--all",
            "--preserve-digests",
            "--retry-times=2",
            "--dest-tls-verify=false",
            "--dest-no-creds",
            "--sign-by",
            gpg.fingerprint,
            f"oci:{layout}:{layout_tag}",
            f"docker://{host}/{repo}:{tag}",
        ],
        env=gpg.env,
    )
    after = lookaside_signatures(lookaside_dir, repo, digest)
    if len(after) != before + 1:
        raise RuntimeError(f"no new signature under {lookaside_dir}/{repo}@{digest.replace(':', '=')}")
    return registries_d


# -- the signed registry -------------------------------------------------------------------------------------


@dataclass
class SignedRegistry:
    """One registry holding real signatures of every kind the bed can make (:func:`build_signed_registry`).

    ``images``: ``"repo:tag"`` → digest for ``signed/cosign:1.0`` (1 cosign signature, key 0),
    ``signed/cosign2:1.0`` (2 cosign signatures: keys 0 and 1), ``signed/gpg:1.0`` (GPG simple signing in
    ``lookaside_dir``), ``signed/notation:1.0`` (notation-go COSE vector; absent when the vectors are
    missing), ``plain/unsigned:1.0`` and ``signed/multi:1.0`` (amd64+arm64 OCI index; cosign key 0 signed the
    index digest only, the children are unsigned).
    """

    registry: RegistryHandle
    images: dict[str, str]
    lookaside_dir: Path
    #: registries.d for skopeo: sigstore attachments everywhere + this host's lookaside (both skopeos read it)
    registries_d: Path
    cosign_keys: list[CosignKey]
    gpg: GpgHome
    gpg_public_key: Path
    skopeo13: str
    #: "repo:tag" → indexes into ``cosign_keys`` that signed it (cosign format), in signing order
    cosign_signers: dict[str, list[int]] = field(default_factory=dict)
    gpg_signed: list[str] = field(default_factory=list)
    notation: NotationPush | None = None
    #: why ``signed/notation:1.0`` is missing, when it is
    notation_skipped: str | None = None
    setup_seconds: float = 0.0
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def host(self) -> str:
        return self.registry.host

    @property
    def url(self) -> str:
        return self.registry.url

    @property
    def cosign_public_key(self) -> Path:
        return self.cosign_keys[0].public_key

    @property
    def cosign_public_keys(self) -> list[Path]:
        return [k.public_key for k in self.cosign_keys]

    def digest(self, ref: str) -> str:
        return self.images[ref]

    def stop(self) -> None:
        self.registry.stop()


def build_signed_registry(
    workdir: Path,
    *,
    skopeo13: str,
    cosign_keys: list[CosignKey],
    gpg: GpgHome,
    registry: RegistryHandle | None = None,
    workers: int = 4,
) -> SignedRegistry:
    """Start a registry under ``workdir`` (or use ``registry``: plain HTTP) and fill it (see SignedRegistry).

    Needs two cosign keys (``cosign_keys[0]`` and ``[1]``). Independent pushes run in ``workers`` threads
    (each skopeo signature spends ~0.3 s CPU in scrypt decrypting the key). The caller stops the registry.
    """
    if len(cosign_keys) < 2:
        raise ValueError("build_signed_registry needs two cosign keys")
    started = time.monotonic()
    timings: dict[str, float] = {}
    handle = registry if registry is not None else start_registry(workdir / "registry")
    timings["start_registry"] = round(time.monotonic() - started, 3)
    try:
        layout = workdir / "layout"
        for name in ("cosign", "cosign2", "gpg", "unsigned"):
            build_layout(layout, name, seed=f"sigscope signed_registry {name}")
        build_layout(layout, "multi", seed="sigscope signed_registry multi", architectures=["amd64", "arm64"])
        host = handle.host
        lookaside = workdir / "lookaside"
        k0, k1 = cosign_keys[0], cosign_keys[1]

        def cosign() -> str:
            return sign_cosign(
                skopeo13,
                layout,
                "cosign",
                host,
                "signed/cosign",
                "1.0",
                k0.private_key,
                k0.passphrase,
                workdir,
            )

        def cosign2() -> str:
            sign_cosign(
                skopeo13,
                layout,
                "cosign2",
                host,
                "signed/cosign2",
                "1.0",
                k0.private_key,
                k0.passphrase,
                workdir,
            )
            return sign_cosign_existing(
                skopeo13, host, "signed/cosign2", "1.0", k1.private_key, k1.passphrase, workdir
            )

        def gpg_signed() -> str:
            sign_gpg(layout, "gpg", host, "signed/gpg", "1.0", gpg, lookaside, workdir)
            return layout_digest(layout, "gpg")

        def unsigned() -> str:
            push_layout(layout, "unsigned", host, "plain/unsigned", "1.0")
            return layout_digest(layout, "unsigned")

        def multi() -> str:
            push_layout(layout, "multi", host, "signed/multi", "1.0")  # unsigned push of index + children
            digest = sign_cosign_existing(
                skopeo13, host, "signed/multi", "1.0", k0.private_key, k0.passphrase, workdir
            )
            if digest != layout_digest(layout, "multi"):
                raise RuntimeError("signed/multi:1.0 digest changed on push")
            return digest

        def notation() -> NotationPush | None:
            if not vectors_available():
                return None
            return push_notation_vector(host, "signed/notation", "1.0", workdir, storage_root=handle.rootdir)

        def timed(name: str, fn: Callable[[], _T]) -> Callable[[], _T]:
            def run() -> _T:
                t0 = time.monotonic()
                try:
                    return fn()
                finally:
                    timings[name] = round(time.monotonic() - t0, 3)

            return run

        steps: dict[str, Callable[[], str]] = {
            "signed/cosign:1.0": cosign,
            "signed/cosign2:1.0": cosign2,
            "signed/multi:1.0": multi,
            "signed/gpg:1.0": gpg_signed,
            "plain/unsigned:1.0": unsigned,
        }
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = {ref: pool.submit(timed(ref, fn)) for ref, fn in steps.items()}
            notation_future = pool.submit(timed("signed/notation:1.0", notation))
            images = {ref: future.result() for ref, future in futures.items()}
            pushed_notation = notation_future.result()
        skipped: str | None = None
        if pushed_notation is not None:
            images["signed/notation:1.0"] = pushed_notation.subject_digest
        else:
            skipped = "notation-go vectors not found (set SIGSCOPE_VECTORS)"

        registries_d = write_registries_d(workdir / "registries.d", host=host, lookaside_dir=lookaside)
        gpg_public = gpg.export_public(workdir / "gpg-public.gpg")
        handle.images.update(images)
        return SignedRegistry(
            registry=handle,
            images=images,
            lookaside_dir=lookaside,
            registries_d=registries_d,
            cosign_keys=list(cosign_keys),
            gpg=gpg,
            gpg_public_key=gpg_public,
            skopeo13=skopeo13,
            cosign_signers={"signed/cosign:1.0": [0], "signed/cosign2:1.0": [0, 1], "signed/multi:1.0": [0]},
            gpg_signed=["signed/gpg:1.0"],
            notation=pushed_notation,
            notation_skipped=skipped,
            setup_seconds=round(time.monotonic() - started, 3),
            timings=timings,
        )
    except BaseException:
        if registry is None:
            handle.stop()
        raise


def policy_json(requirements: list[dict[str, Any]]) -> dict[str, Any]:
    """containers-policy.json that applies ``requirements`` to every docker image and rejects the rest."""
    return {"default": [{"type": "reject"}], "transports": {"docker": {"": requirements}}}


def sigstore_policy(public_keys: list[Path]) -> dict[str, Any]:
    """Policy accepting a cosign-format signature by any of ``public_keys`` (repository identity)."""
    req: dict[str, Any] = {"type": "sigstoreSigned", "signedIdentity": {"type": "matchRepository"}}
    if len(public_keys) == 1:
        req["keyPath"] = str(public_keys[0])
    else:
        req["keyPaths"] = [str(p) for p in public_keys]
    return policy_json([req])


def gpg_policy(public_key: Path) -> dict[str, Any]:
    """Policy accepting images with a GPG simple signature by ``public_key`` (exact identity as signed)."""
    return policy_json([{"type": "signedBy", "keyType": "GPGKeys", "keyPath": str(public_key)}])


def skopeo_verify(
    skopeo: str,
    policy: dict[str, Any],
    registries_d: Path,
    image: str,
    workdir: Path,
    *,
    index_only: bool = False,
) -> subprocess.CompletedProcess[str]:
    """``skopeo copy --policy P --registries.d D docker://IMAGE dir:OUT``; returns the finished process.

    ``index_only`` copies just the index (``--multi-arch index-only``): only the index signature is checked.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix="policy-", suffix=".json", dir=workdir)
    with os.fdopen(fd, "w") as f:
        json.dump(policy, f)
    out = Path(tempfile.mkdtemp(prefix="out-", dir=workdir))
    cmd = [skopeo, "copy", "--policy", name, "--registries.d", str(registries_d), "--src-tls-verify=false"]
    if index_only:
        cmd += ["--multi-arch", "index-only"]
    cmd += ["--src-no-creds", f"docker://{image}", f"dir:{out}"]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    finally:
        shutil.rmtree(out, ignore_errors=True)
        Path(name).unlink(missing_ok=True)
