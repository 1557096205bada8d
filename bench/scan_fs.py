"""`sigscope scan fs` on a generated tree, next to a raw "read the first 4 KiB of every file" baseline.

Generates FILES files (default 20,000) in a temp dir: mostly unsigned (text and binary, 0.5-32 KiB, some
ZIPs and unsigned PEs that a handler must look at and reject), plus SIGNED signed JAR and Authenticode
files from the fixtures under tests/fixtures/files (made with jarsigner when none exist), twice: a
"copies" tree where they are byte-for-byte copies of a few fixtures, and a "distinct" tree (the same
unsigned files, hard-linked) where every signed file has its own bytes and still verifies (a JAR gets its
own ZIP comment, a PE its own header checksum, an MSI or CAB its own trailing bytes; none of those is
covered by the signature). Nothing in sigscope remembers answers by content, so the two should agree;
both are printed so that no cache can flatter the figures unnoticed. Then, in one run and alternating
rounds (median of ROUNDS), with the page cache warm:

- baseline: os.scandir walk + os.open/read(4096)/close of every file, in Python, nothing else;
- classify: sigscope's walker deciding candidates from the first 4 KiB (no parsing);
- report: the default scan (parse signed files, hash them for the digest) with --jobs 0 (all in this
  process), 1 and 2 worker processes; the row marked "default" is what --jobs auto picks here;
- verify: --verify against the test PKI's root, --jobs 0, 1 and 2.

"ms/signed" is (mode - classify) / signed files: what each signed file costs beyond being sniffed.

Everything runs in this process through `sigscope.scan.files.scan_fs` (the CLI's own loop, minus
rendering), so interpreter start-up is not in the figures. Prints files/s and the ratio to the baseline;
the goal is a default scan within 2x of the baseline.

Usage: python bench/scan_fs.py [--files 20000] [--signed 300] [--rounds 3] [--keep DIR] [--quick]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives.serialization import Encoding  # noqa: E402

from sigscope.report.files import FsSummary  # noqa: E402
from sigscope.scan.files import FsScanOptions, FsStats, TrustSpec, auto_jobs, scan_fs  # noqa: E402
from sigscope.trust.certs import utcnow  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "files"
SIGNED_NAMES = (
    "jar/signed-rsa.jar",
    "jar/signed-ec.jar",
    "jar/signed-tsa.jar",
    "authenticode/rsa.exe",
    "authenticode/ec.dll",
    "authenticode/ts-rfc3161.exe",
    "authenticode/rsa.msi",
    "authenticode/rsa.cab",
)
UNSIGNED_BINARIES = ("jar/unsigned.jar", "authenticode/unsigned.exe")


def signed_sources(workdir: Path) -> list[Path]:
    found = [FIXTURES / name for name in SIGNED_NAMES if (FIXTURES / name).is_file()]
    if found:
        return found
    # No fixtures yet: sign a JAR with the JDK so the benchmark still has signed files to parse.
    keystore = workdir / "bench.p12"
    jar = workdir / "bench.jar"
    (workdir / "Hello.txt").write_text("hello\n")
    subprocess.run(["jar", "cf", str(jar), "-C", str(workdir), "Hello.txt"], check=True)
    subprocess.run(
        ["keytool", "-genkeypair", "-alias", "b", "-keyalg", "EC", "-dname", "CN=bench", "-keystore",
         str(keystore), "-storepass", "changeit", "-storetype", "PKCS12", "-validity", "30"],
        check=True, capture_output=True,
    )  # fmt: skip
    subprocess.run(
        ["jarsigner", "-keystore", str(keystore), "-storepass", "changeit", str(jar), "b"],
        check=True, capture_output=True,
    )  # fmt: skip
    return [jar]


def distinct(data: bytes, suffix: str, i: int) -> bytes:
    """Bytes of a signed file made unique where its signature does not look (it still verifies)."""
    if suffix in (".jar", ".war", ".apk"):
        end = data.rfind(b"PK\x05\x06")
        comment = b"copy %d" % i  # the ZIP comment: outside every entry and the central directory
        return data[: end + 20] + struct.pack("<H", len(comment)) + comment
    if suffix in (".exe", ".dll", ".sys", ".efi"):
        (pe,) = struct.unpack_from("<I", data, 0x3C)
        unique = bytearray(data)
        struct.pack_into("<I", unique, pe + 24 + 64, i)  # CheckSum: excluded from the Authenticode hash
        return bytes(unique)
    return data + b"\0" * (8 * (i % 64 + 1)) + struct.pack("<I", i)  # MSI, CAB: after the signed extent


def generate(root: Path, twin: Path, files: int, signed: int, rng: random.Random) -> None:
    """`root` with copies of the signed fixtures, `twin` with the same files but distinct signed ones."""
    sources = signed_sources(root.parent)
    contents = {source: source.read_bytes() for source in sources}
    unsigned_bins = [FIXTURES / n for n in UNSIGNED_BINARIES if (FIXTURES / n).is_file()]
    per_dir = 100
    signed_at = set(rng.sample(range(files), signed))
    binaries_at = set(rng.sample(sorted(set(range(files)) - signed_at), min(200, files // 50)))
    for i in range(files):
        relative = Path(f"d{i // (per_dir * 20):02d}") / f"s{(i // per_dir) % 20:02d}"
        directory, other = root / relative, twin / relative
        if i % per_dir == 0:
            directory.mkdir(parents=True, exist_ok=True)
            other.mkdir(parents=True, exist_ok=True)
        if i in signed_at:
            source = sources[i % len(sources)]
            name = f"f{i}{source.suffix}"
            shutil.copyfile(source, directory / name)
            (other / name).write_bytes(distinct(contents[source], source.suffix, i))
            continue
        if i in binaries_at and unsigned_bins:
            source = unsigned_bins[i % len(unsigned_bins)]
            name = f"f{i}{source.suffix}"
            shutil.copyfile(source, directory / name)
        else:
            size = int(rng.choice((512, 2048, 4096, 8192, 32768)) * rng.uniform(0.5, 1.0))
            if i % 3:
                data = (b"line of text %d\n" % i) * (size // 16)
                name = f"f{i}.txt"
            else:
                data = rng.randbytes(size)
                name = f"f{i}.bin"
            (directory / name).write_bytes(data)
        os.link(directory / name, other / name)


def baseline(root: Path) -> int:
    count = 0
    stack = [str(root)]
    while stack:
        with os.scandir(stack.pop()) as listing:
            for entry in listing:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    fd = os.open(entry.path, os.O_RDONLY)
                    try:
                        os.read(fd, 4096)
                    finally:
                        os.close(fd)
                    count += 1
    return count


def sigscope_mode(root: Path, **options: object) -> Callable[[], int]:
    def run() -> int:
        stats = FsStats()
        summary = FsSummary(str(root), stats=stats)
        for result in scan_fs([str(root)], FsScanOptions(**options), stats):  # type: ignore[arg-type]
            summary.add(result)
        if summary.errors or (options.get("verify") and set(summary.statuses) != {"verified"}):
            # the distinct tree must hold distinct files that still verify, or its rows mean nothing
            raise SystemExit(f"{root}: {summary.errors} errors, statuses {dict(summary.statuses)}")
        return stats.files

    return run


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--signed", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", type=Path, help="generate into (or reuse) this directory")
    parser.add_argument("--quick", action="store_true", help="no --verify rows")
    args = parser.parse_args()

    workdir = args.keep or Path(tempfile.mkdtemp(prefix="sigscope-bench-fs-"))
    copies, unique = workdir / "tree", workdir / "tree-distinct"
    try:
        if not copies.is_dir() or not unique.is_dir():
            shutil.rmtree(copies, ignore_errors=True)
            shutil.rmtree(unique, ignore_errors=True)
            started = time.perf_counter()
            generate(copies, unique, args.files, args.signed, random.Random(20_000))
            took = time.perf_counter() - started
            print(f"generated {args.files} files ({args.signed} signed) twice in {took:.1f} s")
        size = sum(p.stat().st_size for p in copies.rglob("*") if p.is_file())
        print(
            f"tree: {copies} ({size / 2**20:.0f} MiB); cores: {os.cpu_count()}; "
            f"load: {os.getloadavg()[0]:.2f}"
        )

        root_pem = (FIXTURES / "pki" / "root.crt").read_bytes()
        trust = TrustSpec(
            roots=(x509.load_pem_x509_certificate(root_pem).public_bytes(Encoding.DER),), at=utcnow()
        )
        modes: dict[str, Callable[[], int]] = {
            "baseline: read 4 KiB of every file": lambda: baseline(copies),
            "classify only": sigscope_mode(copies, classify_only=True),
        }
        default_report, default_verify = auto_jobs(False), auto_jobs(True)

        def label(mode: str, jobs: int, default: int, tree: str) -> str:
            return f"{mode} --jobs {jobs}{' (default)' if jobs == default else ''}, {tree}"

        for tree_label, tree in (("copies", copies), ("distinct", unique)):
            for jobs in (0, 1, 2):
                modes[label("report", jobs, default_report, tree_label)] = sigscope_mode(tree, jobs=jobs)
        if not args.quick:
            for tree_label, tree in (("copies", copies), ("distinct", unique)):
                for jobs in (0, 1, 2):
                    modes[label("--verify", jobs, default_verify, tree_label)] = sigscope_mode(
                        tree, verify=True, trust=trust, jobs=jobs
                    )
        baseline(copies)  # warm the page cache and the dentry cache
        baseline(unique)
        times: dict[str, list[float]] = {name: [] for name in modes}
        counts: dict[str, int] = {}
        for _ in range(args.rounds):
            for name, fn in modes.items():
                started = time.perf_counter()
                counts[name] = fn()
                times[name].append(time.perf_counter() - started)
        base = statistics.median(times["baseline: read 4 KiB of every file"])
        classify = statistics.median(times["classify only"])
        print(
            f"\n--jobs auto here: {default_report} without --verify, {default_verify} with it"
            f"\n\n{'mode':44} {'files':>7} {'median s':>9} {'files/s':>9} {'x base':>7} {'ms/signed':>10}"
        )
        for name in modes:
            median = statistics.median(times[name])
            rate = counts[name] / median
            extra = (
                f"{(median - classify) * 1000 / args.signed:10.2f}"
                if name.startswith(("report", "--verify"))
                else ""
            )
            print(f"{name:44} {counts[name]:7d} {median:9.3f} {rate:9.0f} {median / base:7.2f} {extra}")
        print(f"\nload after: {os.getloadavg()[0]:.2f} (other processes share these cores)")
    finally:
        if args.keep is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
