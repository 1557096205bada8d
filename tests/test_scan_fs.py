"""`sigscope scan fs`: a mixed tree of signed, unsigned, broken and detached-signed files, through the CLI."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import random
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from rich.cells import cell_len
from testbed import absent, build_layout, vectors
from testbed.cli import run_sigscope as run
from testbed.signing import GpgHome

from sigscope.keys import generate, write_key_pair

FIXTURES = Path(__file__).parent / "fixtures" / "files"
PKI = FIXTURES / "pki"
JARS = FIXTURES / "jar"
ASSETS = vectors.ROOT / "sigstore-sigstore-python" / "test" / "assets"
PASSWORD = "scan-fs-test"


def scan_json(*args: str, code: int = 0) -> dict[str, Any]:
    result = run("scan", "fs", *args, "-o", "json")
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def rows(document: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    by_name: dict[str, list[dict[str, Any]]] = {}
    for entry in document["filesystem"]["signatures"]:
        by_name.setdefault(
            Path(entry["path"]).name if not entry["path"].startswith("oci:") else "oci", []
        ).append(entry)
    return by_name


def sha256(path: Path) -> str:
    return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()


class Tree:
    def __init__(self, root: Path, gpg: GpgHome) -> None:
        self.root = root
        self.gpg = gpg
        self.keyring = root.parent / "signer.gpg"
        gpg.export_public(self.keyring)
        self.cosign_pub = root.parent / "cosign.pub"


def _sign_blob(artifact: Path) -> None:
    key = serialization.load_pem_private_key((PKI / "ec-signer.key").read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    signature = key.sign(artifact.read_bytes(), ec.ECDSA(hashes.SHA256()))
    artifact.with_name(artifact.name + ".sig").write_bytes(base64.b64encode(signature) + b"\n")
    shutil.copy(PKI / "ec-signer.crt", artifact.with_name(artifact.name + ".pem"))


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Any:
    if shutil.which("gpg") is None:
        absent.unavailable("gpg not installed (apt-get install -y gnupg)")
    if not (JARS / "signed-rsa.jar").is_file():
        absent.unavailable("JAR fixtures not built yet (tests/fixtures/files/jar)")
    base = tmp_path_factory.mktemp("scan-fs")
    root = base / "tree"
    (root / "plain" / "deeper").mkdir(parents=True)
    (root / "plain" / "readme.txt").write_text("nothing signed here\n")
    (root / "plain" / "empty").write_bytes(b"")
    # random bytes, starting the way XML may so that binary data is seen not to be an unsigned document
    (root / "plain" / "deeper" / "data.bin").write_bytes(b"<" + random.Random(1).randbytes(10000))
    (root / "jars").mkdir()
    for name in ("signed-rsa.jar", "tampered-class.jar", "unsigned.jar"):
        shutil.copy(JARS / name, root / "jars" / name)
    (root / "node_modules").mkdir()
    shutil.copy(JARS / "signed-ec.jar", root / "node_modules" / "vendored.jar")

    with GpgHome("release signer <release@sigscope.test>") as gpg:
        detached = root / "detached"
        detached.mkdir()
        artifact = detached / "release.tar.gz"
        artifact.write_bytes(b"release\n" * 4096)
        gpg.gpg("--armor", "--detach-sign", "--output", str(artifact) + ".asc", str(artifact))
        blob = detached / "tool.tgz"
        blob.write_bytes(b"tool\n" * 999)
        _sign_blob(blob)

        broken = root / "broken"
        broken.mkdir()
        (broken / "cut.tar.gz").write_bytes(b"cut")
        gpg.gpg(
            "--armor", "--detach-sign", "--output", str(broken / "cut.tar.gz.asc"), str(broken / "cut.tar.gz")
        )
        text = (broken / "cut.tar.gz.asc").read_bytes()
        (broken / "cut.tar.gz.asc").write_bytes(text[: len(text) // 2])
        data = (JARS / "signed-rsa.jar").read_bytes()
        (broken / "truncated.jar").write_bytes(data[: len(data) // 3])
        shutil.copy(JARS / "signed-rsa.jar", broken / "unreadable.jar")
        (broken / "unreadable.jar").chmod(0)

        if ASSETS.is_dir():
            (root / "bundles").mkdir()
            for name in ("bundle.txt", "bundle.txt.sigstore"):
                shutil.copy(ASSETS / name, root / "bundles" / name)

        layout = root / "images" / "app"
        build_layout(layout, "v1", seed="scan-fs/app:v1")
        private, public = write_key_pair(base / "cosign", generate("ecdsa-p256"), PASSWORD)
        signed = run(
            "sign",
            f"oci:{layout}:v1",
            "--key",
            str(private),
            "--sign-container-identity",
            "registry.example.com/team/app",
            env={"SIGSCOPE_PASSWORD": PASSWORD},
        )
        assert signed.returncode == 0, signed.stderr
        state = Tree(root, gpg)
        state.cosign_pub = public
        yield state
    (broken / "unreadable.jar").chmod(0o644)


def unreadable_is_unreadable(tree: Tree) -> bool:
    try:
        (tree.root / "broken" / "unreadable.jar").read_bytes()
    except PermissionError:
        return True
    return False  # running as root: permissions do not stop us


def test_json_keeps_sigscan_shape_with_rich_fields(tree: Tree) -> None:
    document = scan_json(str(tree.root))
    assert document["directories"] == str(tree.root)
    found = rows(document)

    (jar,) = found["signed-rsa.jar"]
    assert jar["subjectname"] == "CN=RSA Code Signer,O=sigscope tests,C=US"
    assert jar["countersigner"] == ""
    assert jar["digest"] == sha256(tree.root / "jars" / "signed-rsa.jar")
    for key in (
        "type",
        "issuer",
        "serial",
        "thumbprint",
        "notAfter",
        "selfSigned",
        "expired",
        "eku",
        "status",
    ):
        assert key in jar, key
    assert jar["status"] == "unverified"  # nothing is verified without --verify

    (pgp,) = found["release.tar.gz"]
    assert pgp["kind"] == "openpgp" and pgp["type"] == "detached"
    assert pgp["digest"] == sha256(tree.root / "detached" / "release.tar.gz")
    assert pgp["location"].endswith("release.tar.gz.asc")
    assert pgp["subjectname"] == f"OpenPGP key {tree.gpg.key_id}"

    (blob,) = found["tool.tgz"]
    assert blob["kind"] == "cosign-blob" and blob["status"] == "integrity-ok"
    assert blob["subjectname"].startswith("CN=EC Code Signer")

    if ASSETS.is_dir():
        (bundle,) = found["bundle.txt"]
        assert bundle["kind"] == "sigstore-bundle" and bundle["status"] == "integrity-ok"

    (image,) = found["oci"]
    assert image["kind"] == "cosign" and image["type"] == "oci-image"
    assert image["path"].startswith(f"oci:{tree.root / 'images' / 'app'}")

    assert "unsigned.jar" not in found  # unsigned files are not rows...
    assert any(p.endswith("jars/unsigned.jar") for p in document["unsigned"])  # ...but are counted
    errors = {Path(e["path"]).name: e["error"] for e in document["errors"]}
    assert "cut.tar.gz.asc" in errors and "END line" in errors["cut.tar.gz.asc"]
    assert "truncated.jar" in errors or "truncated.jar" in found  # the JAR handler decides how it reads
    if unreadable_is_unreadable(tree):
        assert "Permission denied" in errors["unreadable.jar"]
    summary = document["summary"]
    assert summary["files"] >= 15 and summary["errors"] >= 1 and summary["ociLayouts"] == 1


def test_jq_projection(tree: Tree) -> None:
    if shutil.which("jq") is None:
        absent.unavailable("jq not installed")
    scan = run("scan", "fs", str(tree.root), "--output", "json")
    projected = subprocess.run(
        ["jq", "-c", ".filesystem.signatures[] | {path, subjectname, countersigner}"],
        input=scan.stdout,
        capture_output=True,
        text=True,
        check=True,
    )
    lines = [json.loads(line) for line in projected.stdout.splitlines()]
    assert lines and all(set(line) == {"path", "subjectname", "countersigner"} for line in lines)
    assert any(line["subjectname"].startswith("CN=RSA Code Signer") for line in lines)


def test_verify_with_trust_material(tree: Tree) -> None:
    args = [
        str(tree.root),
        "--verify",
        "--ca-file",
        str(PKI / "root.crt"),
        "--gpg-keyring",
        str(tree.keyring),
        "--key",
        str(tree.cosign_pub),
    ]
    found = rows(scan_json(*args))
    assert found["signed-rsa.jar"][0]["status"] == "verified"
    assert found["signed-rsa.jar"][0]["chainStatus"] == "trusted"
    (tampered,) = found["tampered-class.jar"]
    assert tampered["status"] == "invalid" and tampered["reason"]
    assert found["release.tar.gz"][0]["status"] == "verified"
    assert found["release.tar.gz"][0]["subjectname"] == "release signer <release@sigscope.test>"
    assert found["tool.tgz"][0]["status"] == "verified"
    assert found["oci"][0]["status"] == "verified"  # --key applies to cosign signatures in layouts

    failing = run("scan", "fs", *args, "--fail-on", "invalid")
    assert failing.returncode == 1 and "--fail-on matched: invalid" in failing.stderr

    other_root = rows(
        scan_json(str(tree.root / "jars"), "--verify", "--ca-file", str(PKI / "other-root.crt"))
    )
    assert other_root["signed-rsa.jar"][0]["status"] == "untrusted"
    system_store = rows(scan_json(str(tree.root / "jars"), "--verify"))  # the test root is not in it
    assert system_store["signed-rsa.jar"][0]["status"] == "untrusted"
    trust_dir = tree.root.parent / "trust-store"
    trust_dir.mkdir(exist_ok=True)
    shutil.copy(PKI / "root.crt", trust_dir / "root.pem")
    from_dir = rows(scan_json(str(tree.root / "jars"), "--verify", "--trust-store", str(trust_dir)))
    assert from_dir["signed-rsa.jar"][0]["status"] == "verified"


def test_tampered_detached_content_is_invalid(tree: Tree, tmp_path: Path) -> None:
    shutil.copytree(tree.root / "detached", tmp_path / "d")
    (tmp_path / "d" / "release.tar.gz").write_bytes(b"release\n" * 4095 + b"evil!!!\n")
    (tmp_path / "d" / "tool.tgz").write_bytes(b"tool\n" * 998 + b"evil\n")
    found = rows(scan_json(str(tmp_path / "d"), "--verify", "--gpg-keyring", str(tree.keyring)))
    assert found["release.tar.gz"][0]["status"] == "invalid"
    assert "BADSIG" in found["release.tar.gz"][0]["reason"]
    assert found["tool.tgz"][0]["status"] == "invalid"
    assert "does not verify" in found["tool.tgz"][0]["reason"]


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)


def test_every_output_parses(tree: Tree) -> None:
    target = str(tree.root)
    expected = len(scan_json(target)["filesystem"]["signatures"])

    ndjson = run("scan", "fs", target, "-o", "ndjson")
    assert ndjson.returncode == 0
    lines = [json.loads(line) for line in ndjson.stdout.splitlines()]
    assert lines[-1]["record"] == "summary"
    assert sum(1 for line in lines if line["record"] == "signature") == expected
    assert any(line["record"] == "error" for line in lines)
    assert ndjson.stderr.startswith("Found ")  # the human line goes to stderr for machine formats

    table = list(csv.DictReader(io.StringIO(run("scan", "fs", target, "-o", "csv").stdout)))
    assert sum(1 for row in table if row["status"] != "error") == expected
    assert {"path", "digest", "subjectname", "countersigner"} <= set(table[0])

    sarif = json.loads(run("scan", "fs", target, "-o", "sarif").stdout)
    assert sarif["version"] == "2.1.0"
    rules = {r["ruleId"] for r in sarif["runs"][0]["results"]}
    assert {"SIG001", "SIG002", "SIG005"} <= rules or {"SIG001", "SIG005"} <= rules

    page = run("scan", "fs", target, "-o", "html").stdout
    parser = _Tags()
    parser.feed(page)
    assert page.startswith("<!DOCTYPE html>") and parser.tags.count("tr") >= expected

    # Pretty shows paths below the scanned directory, so what it shows does not depend on where tmp_path is.
    for output in ("pretty", "wide"):
        shown = run("scan", "fs", target, "-o", output, env={"COLUMNS": "80"})
        assert shown.returncode == 0 and "jars/signed-rsa.jar" in shown.stdout
        assert "error: broken/truncated.jar: " in shown.stdout or output == "wide"
        # The sigstore bundle adds one where the shared vectors are present.
        assert (
            re.search(r"Found [78] signatures", shown.stdout) and "\x1b[" not in shown.stdout
        )  # no bar/colours
        lines = shown.stdout.splitlines()
        if output == "pretty":
            assert max(cell_len(line) for line in lines) <= 80
        else:  # whole paths, one row per line, however long tmp_path is
            assert any(line.startswith("│ " + str(tree.root / "jars" / "signed-rsa.jar")) for line in lines)


def test_include_and_exclude(tree: Tree) -> None:
    everything = rows(scan_json(str(tree.root)))
    assert "vendored.jar" in everything
    pruned = rows(scan_json(str(tree.root), "--exclude", "node_modules", "--exclude", "broken"))
    assert "vendored.jar" not in pruned and "signed-rsa.jar" in pruned
    only = scan_json(str(tree.root), "--include", "*.jar", "--exclude", "broken")
    assert {
        Path(e["path"]).suffix for e in only["filesystem"]["signatures"] if not e["path"].startswith("oci:")
    } == {".jar"}
    assert only["errors"] == []


def test_cache_skips_unchanged_files_and_rereads_changed_ones(tree: Tree, tmp_path: Path) -> None:
    work = tmp_path / "t"
    shutil.copytree(tree.root / "jars", work / "jars")
    shutil.copytree(tree.root / "detached", work / "detached")
    shutil.copytree(tree.root / "plain", work / "plain")
    cache = tmp_path / "scan.db"
    first = scan_json(str(work), "--cache", str(cache))
    assert first["summary"]["cached"] == 0
    second = scan_json(str(work), "--cache", str(cache))
    assert second["summary"]["cached"] == second["summary"]["files"]
    assert second["filesystem"]["signatures"] == first["filesystem"]["signatures"]
    assert second["unsigned"] == first["unsigned"]

    # A changed file is read again, and so is a detached signature whose signed file changed.
    shutil.copy(JARS / "tampered-class.jar", work / "jars" / "signed-rsa.jar")
    (work / "detached" / "release.tar.gz").write_bytes(b"changed")
    third = scan_json(str(work), "--cache", str(cache))
    assert third["summary"]["cached"] == third["summary"]["files"] - 3  # the jar, the .tar.gz and its .asc
    changed = rows(third)["signed-rsa.jar"][0]
    assert changed["digest"] == sha256(JARS / "tampered-class.jar")
    assert rows(third)["release.tar.gz"][0]["digest"] == sha256(work / "detached" / "release.tar.gz")

    # Another --verify setting sets the cache aside instead of serving answers made without it.
    verified = run(
        "scan", "fs", str(work), "--cache", str(cache), "--verify", "--ca-file", str(PKI / "root.crt")
    )
    assert "starting afresh" in verified.stderr


def test_symlinks_and_loops(tree: Tree, tmp_path: Path) -> None:
    work = tmp_path / "links"
    (work / "real").mkdir(parents=True)
    shutil.copy(JARS / "signed-rsa.jar", work / "real" / "app.jar")
    (work / "real" / "loop").symlink_to("..")  # a directory cycle
    (work / "alias.jar").symlink_to("real/app.jar")
    (work / "a").symlink_to("b")  # a symlink loop: neither resolves
    (work / "b").symlink_to("a")
    os.mkfifo(work / "pipe")  # opening it would block the scan forever

    plain = scan_json(str(work))
    assert [Path(e["path"]).name for e in plain["filesystem"]["signatures"]] == ["app.jar"]
    assert plain["summary"]["symlinksSkipped"] == 4 and plain["errors"] == []
    assert plain["summary"]["special"] == 1

    followed = scan_json(str(work), "--follow-symlinks")
    names = sorted(Path(e["path"]).name for e in followed["filesystem"]["signatures"])
    assert names == ["alias.jar", "app.jar"]  # the cycle is walked once, not forever
    assert followed["summary"]["symlinkLoops"] == 1
    errors = {Path(e["path"]).name: e["error"] for e in followed["errors"]}
    assert set(errors) == {"a", "b"} and "symbolic link" in errors["a"]


def test_pool_gives_the_same_report(tree: Tree) -> None:
    inline = scan_json(str(tree.root), "--jobs", "0")
    others = [scan_json(str(tree.root), *jobs) for jobs in (("--jobs", "1"), ("--jobs", "2"), ())]

    def key(document: dict[str, Any]) -> list[tuple[str, str, str, str]]:
        return sorted(
            (e["path"], e["kind"], e["status"], e["digest"]) for e in document["filesystem"]["signatures"]
        )

    for other in others:
        assert key(other) == key(inline)
        assert sorted(e["path"] for e in other["errors"]) == sorted(e["path"] for e in inline["errors"])


def test_pool_starts_only_with_a_batch_waiting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pool is forked only once a whole batch of claimed files is waiting; below that the scan stays in
    this process; either way every file is answered, in the pool as in-process."""
    if not (JARS / "signed-rsa.jar").is_file():
        absent.unavailable("JAR fixtures not built yet (tests/fixtures/files/jar)")
    import concurrent.futures

    from sigscope.report.files import FsSummary
    from sigscope.scan import files as walker

    pools: list[int] = []

    class Counting(concurrent.futures.ProcessPoolExecutor):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pools.append(kwargs.get("max_workers", 0))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(walker.concurrent.futures, "ProcessPoolExecutor", Counting)

    def scan(root: Path, jobs: int) -> list[tuple[str, str | None, str]]:
        stats = walker.FsStats()
        summary = FsSummary(str(root), stats=stats)
        found = []
        for result in walker.scan_fs([str(root)], walker.FsScanOptions(jobs=jobs), stats):
            summary.add(result)
            found.extend((Path(result.path).name, result.digest, s.status) for s in result.signatures)
        assert not summary.errors
        return sorted(found)

    few, many = tmp_path / "few", tmp_path / "many"
    few.mkdir()
    many.mkdir()
    for n in range(walker.BATCH - 1):
        shutil.copy(JARS / "signed-rsa.jar", few / f"{n}.jar")
    for n in range(walker.BATCH * 3 + 1):
        shutil.copy(JARS / ("signed-ec.jar" if n % 2 else "signed-rsa.jar"), many / f"{n}.jar")

    assert len(scan(few, 2)) == walker.BATCH - 1 and pools == []
    pooled = scan(many, 2)
    assert pools == [2]
    assert pooled == scan(many, 0) and len(pooled) == walker.BATCH * 3 + 1
    assert {status for _, _, status in pooled} == {"unverified"}


def test_auto_jobs_leaves_the_walk_a_cpu() -> None:
    from sigscope.scan.files import auto_jobs

    assert [auto_jobs(False, cpus) for cpus in (1, 2, 4, 64)] == [0, 1, 3, 8]
    assert [auto_jobs(True, cpus) for cpus in (1, 2, 4, 64)] == [0, 2, 4, 8]
    bad = run("scan", "fs", ".", "--jobs", "many")
    assert bad.returncode == 2 and "'many' is not 'auto' or a number" in bad.stderr


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    missing = run("scan", "fs", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert missing.stderr.strip().splitlines() == [
        f"sigscope: error: {tmp_path / 'nope'}: no such file or directory"
    ]
    not_a_cache = tmp_path / "cache.db"
    not_a_cache.write_text("this is not sqlite " * 100)
    (tmp_path / "d").mkdir()
    bad = run("scan", "fs", str(tmp_path / "d"), "--cache", str(not_a_cache))
    assert bad.returncode == 2 and "not a sigscope cache" in bad.stderr


def test_only_signed_files_are_hashed_whole_and_copies_agree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A claimed file that turns out unsigned is never hashed whole (no content memo makes it so); a
    signed one is, for its digest; copies give the same answer, a changed copy its own."""
    if not (JARS / "signed-rsa.jar").is_file():
        absent.unavailable("JAR fixtures not built yet (tests/fixtures/files/jar)")
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    from sigscope.files.registry import HANDLERS
    from sigscope.scan import files as walker

    hashed: list[str] = []
    real = walker._sha256

    def counting(path: str) -> str:
        hashed.append(path)
        return real(path)

    monkeypatch.setattr(walker, "_sha256", counting)
    root = x509.load_pem_x509_certificate((PKI / "root.crt").read_bytes()).public_bytes(Encoding.DER)
    walker._init_worker(walker.TrustSpec(roots=(root,)))
    jar = next(i for i, h in enumerate(HANDLERS) if h.name == "jar")
    first, second, tampered, unsigned = (tmp_path / n for n in ("a.jar", "b.jar", "c.jar", "u.jar"))
    shutil.copy(JARS / "signed-rsa.jar", first)
    shutil.copy(JARS / "signed-rsa.jar", second)
    shutil.copy(JARS / "tampered-class.jar", tampered)
    shutil.copy(JARS / "unsigned.jar", unsigned)
    (u,) = walker.inspect_file(str(unsigned), jar, False)
    assert not u.signatures and u.digest is None and hashed == []
    (a,) = walker.inspect_file(str(first), jar, True)
    (b,) = walker.inspect_file(str(second), jar, True)
    assert hashed == [str(first), str(second)]
    assert b.path == str(second) and b.digest == a.digest and b.signatures == a.signatures
    (c,) = walker.inspect_file(str(tampered), jar, True)
    assert (
        c.digest != a.digest and c.signatures[0].status == "invalid" and a.signatures[0].status == "verified"
    )
    (again,) = walker.inspect_file(str(first), jar, False)  # another --verify setting is another answer
    assert again.signatures[0].status == "unverified" and again.digest == a.digest


def test_fail_on_unsigned_means_a_signable_file_without_signature(tree: Tree) -> None:
    text_only = run("scan", "fs", str(tree.root / "plain"), "--fail-on", "unsigned")
    assert text_only.returncode == 0, text_only.stderr  # text and random bytes are not "unsigned"
    jars = run("scan", "fs", str(tree.root / "jars"), "--fail-on", "unsigned", "-o", "json")
    assert jars.returncode == 1 and "--fail-on matched: unsigned" in jars.stderr
    assert json.loads(jars.stdout)["unsigned"] == [str(tree.root / "jars" / "unsigned.jar")]


SIGSTORE_STORE = ASSETS.parents[1] / "sigstore" / "_store"
STAGING_ROOT = SIGSTORE_STORE / "tuf-repo-cdn.sigstage.dev" / "trusted_root.json"
PRODUCTION_ROOT = SIGSTORE_STORE / "tuf-repo-cdn.sigstore.dev" / "trusted_root.json"


def test_keyless_bundles_verify_offline_against_a_trusted_root(tmp_path: Path) -> None:
    """--trusted-root: the sigstore library checks Fulcio chain, SCT, log entry and signature offline and
    the --certificate-* policy must hold; without it a keyless certificate is merely expired."""
    vectors.require(STAGING_ROOT)
    for name in ("bundle.txt", "bundle.txt.sigstore", "bundle_v3.txt", "bundle_v3.txt.sigstore"):
        shutil.copy(ASSETS / name, tmp_path / name)
    root = str(tmp_path)

    def statuses(*args: str) -> dict[str, tuple[str, str, str]]:
        document = scan_json(root, "--verify", *args)
        return {
            Path(e["path"]).name: (
                e["status"],
                e.get("chainStatus", ""),
                next((c["detail"] for c in e["checks"] if c["name"] == "trusted-chain"), ""),
            )
            for e in document["filesystem"]["signatures"]
        }

    anyone = statuses("--trusted-root", str(STAGING_ROOT), "--certificate-identity-regexp", ".*")
    assert {name: s[0] for name, s in anyone.items()} == {
        "bundle.txt": "verified",
        "bundle_v3.txt": "verified",
    }
    assert "verified by sigstore against" in anyone["bundle.txt"][2] and anyone["bundle.txt"][1] == "trusted"

    one = statuses(
        "--trusted-root",
        str(STAGING_ROOT),
        "--certificate-identity",
        "a@tny.town",
        "--certificate-oidc-issuer",
        "https://github.com/login/oauth",
    )
    assert one["bundle.txt"][0] == "verified"
    assert (
        one["bundle_v3.txt"][0] == "untrusted"
        and "no subject alternative name matches" in one["bundle_v3.txt"][2]
    )

    elsewhere = statuses("--trusted-root", str(PRODUCTION_ROOT), "--certificate-identity-regexp", ".*")
    assert {s[0] for s in elsewhere.values()} == {"untrusted"}
    assert all("sigstore verification failed" in s[2] for s in elsewhere.values())

    # no trusted root: the Fulcio certificate is judged by the trust store and has long expired
    plain = statuses()
    assert {s[0] for s in plain.values()} == {"untrusted"}
    assert all("not valid at that time" in s[1] and "()" not in s[1] for s in plain.values())

    # the artifact changed after signing: invalid whatever the root says
    (tmp_path / "bundle.txt").write_bytes(b"not what was signed\n")
    tampered = scan_json(
        root, "--verify", "--trusted-root", str(STAGING_ROOT), "--certificate-identity-regexp", ".*"
    )
    entry = next(e for e in tampered["filesystem"]["signatures"] if Path(e["path"]).name == "bundle.txt")
    assert entry["status"] == "invalid" and "payload-digest" in entry["reason"]


def test_trusted_root_usage_errors(tmp_path: Path) -> None:
    bad_root = tmp_path / "root.json"
    bad_root.write_text('{"not": "a trusted root"}')
    cases = [
        (("--trusted-root", str(bad_root)), "--trusted-root needs --certificate-identity"),
        (("--certificate-identity", "me@example.com"), "need --trusted-root"),
        (
            ("--trusted-root", str(bad_root), "--certificate-identity-regexp", "("),
            "--certificate-identity-regexp",
        ),
        (
            ("--trusted-root", str(bad_root), "--certificate-identity-regexp", ".*"),
            "not a usable Sigstore trusted root",
        ),
        (
            ("--trusted-root", str(tmp_path / "absent.json"), "--certificate-identity-regexp", ".*"),
            "absent.json: no such file (--trusted-root for scan fs takes a Sigstore trusted root in JSON)",
        ),
    ]
    for args, message in cases:
        result = run("scan", "fs", str(tmp_path), "--verify", *args)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert message in result.stderr, result.stderr
