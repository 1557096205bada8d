"""`scan fs` against hostile files (issue 12): zip bombs, huge detached-signed files, links out of the tree,
FIFOs and devices where an OCI layout's index.json should be. Each is one error row naming what was refused,
the scan goes on, and the process stays small (peak RSS of the real command, measured by wait4)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from testbed import absent, build_layout
from testbed.hostile import Entry, Measured, deflated_zeros, manifest_bomb, run_measured, sparse, write_zip
from testbed.signing import GpgHome

from sigscope.errors import TooLargeError
from sigscope.files import detached, jar
from sigscope.files.base import FileLimits

FIXTURES = Path(__file__).parent / "fixtures" / "files"
PKI = FIXTURES / "pki"
JARS = FIXTURES / "jar"
# The command's own floor is ~50 MiB; each case below cost 0.5-6 GiB before its fix.
RSS_CEILING_MIB = 200


def scan(tmp: Path, *args: str, timeout: float = 120) -> tuple[Measured, dict[str, Any]]:
    measured = run_measured("scan", "fs", *args, "-o", "json", "-j", "0", tmp=tmp, timeout=timeout)
    assert measured.returncode == 0, measured.stderr
    assert "Traceback" not in measured.stderr
    document: dict[str, Any] = json.loads(measured.stdout)
    return measured, document


def errors(document: dict[str, Any]) -> dict[str, str]:
    return {Path(e["path"]).name: e["error"] for e in document["errors"]}


def signed_paths(document: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for entry in document["filesystem"]["signatures"]:
        found.setdefault(Path(entry["path"]).name, []).append(entry)
    return found


# ---------------------------------------------------------------- archives


def test_manifest_bomb_is_one_error_row_in_bounded_memory(tmp_path: Path) -> None:
    """A manifest declared as 2,000 bytes that inflates to 256 MiB: zipfile used to inflate it whole."""
    tree = tmp_path / "tree"
    tree.mkdir()
    manifest_bomb(tree / "bomb.jar", 256 << 20)
    shutil.copy(JARS / "signed-rsa.jar", tree / "good.jar")
    measured, document = scan(tmp_path, str(tree))
    assert "bomb.jar" in errors(document)
    assert "good.jar" in signed_paths(document)  # the scan went on
    assert measured.rss_mib < RSS_CEILING_MIB, measured.rss_mib


def _zeros_zip(path: Path, size: int) -> zipfile.ZipFile:
    data, crc = deflated_zeros(size)
    write_zip(path, [Entry("zeros.bin", data, crc, size)])
    return zipfile.ZipFile(path)


def test_inflater_holds_ratio_total_and_in_memory_caps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jar, "MAX_META_SIZE", 1 << 20)
    with _zeros_zip(tmp_path / "z.zip", 8 << 20) as zf:
        info = zf.getinfo("zeros.bin")
        with pytest.raises(TooLargeError, match="max-ratio"):
            b"".join(jar._Inflater(zf, FileLimits()).chunks(info))
        with pytest.raises(TooLargeError, match="max-decompressed"):
            b"".join(jar._Inflater(zf, FileLimits(max_ratio=10**6, max_decompressed=4 << 20)).chunks(info))
        with pytest.raises(TooLargeError, match="too large for a signature file"):
            jar._Inflater(zf, FileLimits(max_ratio=10**6)).read(info)
        whole = jar._Inflater(zf, FileLimits(max_ratio=10**6, max_decompressed=8 << 20))
        assert sum(len(c) for c in whole.chunks(info)) == 8 << 20
        # the budget is the archive's, not the entry's: a second read of the same entry passes it
        with pytest.raises(TooLargeError, match="max-decompressed"):
            sum(len(c) for c in whole.chunks(info))


def test_entry_count_is_refused_before_zipfile_parses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "many.jar"
    # one real entry, then an end record claiming more entries than the limit
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("a", b"a")
    data = bytearray(path.read_bytes())
    end = data.rfind(b"PK\x05\x06")
    data[end + 8 : end + 12] = (0xFFFE).to_bytes(2, "little") * 2
    path.write_bytes(bytes(data))
    monkeypatch.setattr(jar, "MAX_ENTRIES", 1000)
    with pytest.raises(TooLargeError, match="1000-entry limit"):
        jar.HANDLERS[0].inspect(path, False, jar.FileTrust())


def test_signed_jar_of_zeros_stops_at_the_limits(tmp_path: Path) -> None:
    """A jarsigner-signed JAR with 256 MiB of zeros (~256 KiB on disk): --verify used to hash all of it
    (40 GiB in 112 s for the issue's case); now the ratio stops it at once, --max-decompressed when the
    ratio is raised, and with both raised it verifies, streamed."""
    if shutil.which("jarsigner") is None:
        absent.unavailable("jarsigner not installed")
    tree = tmp_path / "tree"
    tree.mkdir()
    path = tree / "zeros.jar"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\n\r\n")
        with archive.open("zeros.bin", "w", force_zip64=True) as entry:
            for _ in range(256):
                entry.write(bytes(1 << 20))
    p12 = ("-storetype", "PKCS12", "-storepass", "changeit", "-keystore", str(PKI / "ec-signer.p12"))
    subprocess.run(["jarsigner", *p12, str(path), "ec-signer"], check=True, capture_output=True)
    shutil.copy(JARS / "signed-rsa.jar", tree / "good.jar")
    trust = ("--verify", "--ca-file", str(PKI / "root.crt"))

    measured, document = scan(tmp_path, str(tree), *trust)
    assert "max-ratio" in errors(document)["zeros.jar"]
    assert signed_paths(document)["good.jar"][0]["status"] == "verified"
    assert measured.rss_mib < RSS_CEILING_MIB, measured.rss_mib

    measured, document = scan(
        tmp_path, str(tree), *trust, "--max-ratio", "5000", "--max-decompressed", "64MiB"
    )
    assert "max-decompressed" in errors(document)["zeros.jar"]

    measured, document = scan(tmp_path, str(tree), *trust, "--max-ratio", "5000")
    assert [s["status"] for s in signed_paths(document)["zeros.jar"]] == ["verified"]
    assert measured.rss_mib < RSS_CEILING_MIB, measured.rss_mib


# ---------------------------------------------------------------- detached signatures


def _ed25519_pair(tmp: Path) -> tuple[ed25519.Ed25519PrivateKey, Path]:
    key = ed25519.Ed25519PrivateKey.generate()
    pub = tmp / "ed25519.pub"
    pub.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return key, pub


def test_ed25519_blob_over_the_in_memory_limit_is_an_error_row(tmp_path: Path) -> None:
    """Pure Ed25519 signs the message itself: a 1 GiB (sparse) file used to be read whole (1 GB RSS)."""
    key, pub = _ed25519_pair(tmp_path)
    tree = tmp_path / "tree"
    tree.mkdir()
    big = sparse(tree / "big.bin", 1 << 30)
    (tree / "big.bin.sig").write_bytes(base64.b64encode(key.sign(b"not the file")))
    small = tree / "small.bin"
    small.write_bytes(b"small\n" * 1000)
    (tree / "small.bin.sig").write_bytes(base64.b64encode(key.sign(small.read_bytes())))

    measured, document = scan(tmp_path, str(tree), "--verify", "--key", str(pub))
    assert "max-in-memory" in errors(document)["big.bin.sig"]
    assert str(big.stat().st_size) in errors(document)["big.bin.sig"]
    assert [s["status"] for s in signed_paths(document)["small.bin"]] == ["verified"]
    assert measured.rss_mib < RSS_CEILING_MIB, measured.rss_mib

    # the limit is the user's to move, and a file over it is never "verified" either way
    _, document = scan(tmp_path, str(tree), "--verify", "--key", str(pub), "--max-in-memory", "1KiB")
    assert "max-in-memory" in errors(document)["small.bin.sig"]
    assert "small.bin" not in signed_paths(document)


def test_canonical_text_form_streams_like_the_whole_file() -> None:
    rng = random.Random(12)
    for _ in range(200):
        data = bytes(rng.choice(b"ab\r\n") for _ in range(rng.randrange(0, 40)))
        whole = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        canonical = detached._Canonical()
        cuts = sorted(rng.sample(range(len(data) + 1), min(len(data) + 1, 4)))
        pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        assert b"".join(canonical.feed(p) for p in pieces) + canonical.end() == whole, data


@pytest.fixture(scope="module")
def gpg() -> Any:
    if shutil.which("gpg") is None:
        absent.unavailable("gpg not installed (apt-get install -y gnupg)")
    with GpgHome("hostile tests <hostile@sigscope.test>") as home:
        yield home


def test_text_signature_over_a_chunk_boundary_verifies(gpg: GpgHome, tmp_path: Path) -> None:
    """Text signatures were checked over the whole file read into memory; streamed, a CR LF split across
    two chunks must still canonicalize as one line ending."""
    tree = tmp_path / "tree"
    tree.mkdir()
    notes = tree / "notes.txt"
    lines = (b"y" * 63 + b"\n") * ((detached.CHUNK - 1) // 64)
    lines += b"z" * (detached.CHUNK - 1 - len(lines))  # the CR of the next CR LF ends the first chunk
    notes.write_bytes(lines + b"\r\nline\nlast\r\n")
    gpg.gpg("--textmode", "--detach-sign", "--output", str(notes) + ".sig", str(notes))
    keyring = tmp_path / "signer.gpg"
    gpg.export_public(keyring)
    _, document = scan(tmp_path, str(tree), "--verify", "--gpg-keyring", str(keyring))
    [entry] = signed_paths(document)["notes.txt"]
    assert entry["status"] == "verified", entry


def test_links_next_to_signatures_never_lead_out_of_the_tree(gpg: GpgHome, tmp_path: Path) -> None:
    """`shadow -> <outside file>` beside `shadow.asc` used to be followed, hashed and reported (and still
    counted as a skipped link); with --follow-symlinks it is refused too, since it leaves the tree, while a
    link inside the tree is followed."""
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret"
    secret.write_bytes(b"not yours\n")
    (outside / "also-secret.jar").write_bytes((JARS / "signed-rsa.jar").read_bytes())
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "shadow").symlink_to(secret)
    gpg.gpg("--armor", "--detach-sign", "--output", str(tree / "shadow.asc"), str(secret))
    (tree / "outdir").symlink_to(outside, target_is_directory=True)
    real = tree / "real.txt"
    real.write_bytes(b"signed inside\n")
    (tree / "alias").symlink_to(real)
    gpg.gpg("--armor", "--detach-sign", "--output", str(tree / "alias.asc"), str(real))

    measured, document = scan(tmp_path, str(tree))
    assert "symbolic link" in errors(document)["shadow.asc"]
    assert "symbolic link" in errors(document)["alias.asc"]
    assert "not yours" not in measured.stdout
    assert document["summary"]["symlinksSkipped"] == 3, document["summary"]

    measured, document = scan(tmp_path, str(tree), "--follow-symlinks")
    assert "outside the scanned tree" in errors(document)["shadow.asc"]
    assert set(signed_paths(document)) == {"alias"}  # the link inside the tree is followed
    assert "also-secret.jar" not in measured.stdout  # the directory link out of the tree is not walked
    digests = [e.get("digest") for e in document["filesystem"]["signatures"]]
    assert "sha256:" + hashlib.sha256(secret.read_bytes()).hexdigest() not in digests

    # a PATH that is itself a link is followed, as find -H does: the user named it
    shutil.copy(JARS / "signed-rsa.jar", outside / "named.jar")
    (tree / "named.jar").symlink_to(outside / "named.jar")
    _, document = scan(tmp_path, str(tree / "named.jar"))
    assert "named.jar" in signed_paths(document), document["errors"]


# ---------------------------------------------------------------- OCI layouts met in the tree


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
@pytest.mark.parametrize("follow", [False, True])
def test_layout_whose_index_is_not_a_file_is_one_error_row(tmp_path: Path, kind: str, follow: bool) -> None:
    """index.json as a FIFO hung the scan; as a link to /dev/zero it grew to 5 GB and a MemoryError."""
    tree = tmp_path / "tree"
    layout = tree / "images" / "app"
    build_layout(layout, "v1", seed=f"hostile/{kind}")
    (layout / "index.json").unlink()
    if kind == "fifo":
        os.mkfifo(layout / "index.json")
    else:
        (layout / "index.json").symlink_to("/dev/zero")
    shutil.copy(JARS / "signed-rsa.jar", tree / "good.jar")
    measured, document = scan(tmp_path, str(tree), *(["--follow-symlinks"] if follow else []), timeout=60)
    [row] = [e for e in document["errors"] if e["path"].startswith("oci:")]
    assert "index.json" in row["error"], row
    assert "good.jar" in signed_paths(document)
    assert measured.rss_mib < RSS_CEILING_MIB, measured.rss_mib
