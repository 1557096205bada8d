"""The benchmarks still run, on tiny inputs, and their own correctness checks hold (no timing is judged).

Each benchmark stops with an error when sigscope's answer is wrong (a signature that should verify does not,
a distinct signed file that no longer verifies), so running them small keeps both the scripts and those
checks alive between the runs whose figures go into the README.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from testbed import absent

BENCH = Path(__file__).resolve().parents[1] / "bench"


def run(script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    return done.stdout


def test_scan_fs_benchmark_runs(tmp_path: Path) -> None:
    if not (BENCH.parent / "tests" / "fixtures" / "files" / "jar" / "signed-rsa.jar").is_file():
        absent.unavailable("signed-file fixtures not built (tests/fixtures/files)")
    out = run("scan_fs.py", "--files", "400", "--signed", "40", "--rounds", "1", "--keep", str(tmp_path))
    for row in ("baseline: read 4 KiB", "classify only", "report --jobs 0, distinct", "--verify --jobs 2"):
        assert row in out
    assert "--jobs auto here:" in out


def test_verify_benchmark_runs() -> None:
    # 70 signatures: enough for the verify-ahead threads to engage (trust.keys.PARALLEL_MIN is 64)
    out = run("verify.py", "--signatures", "70", "--keys", "3", "--rounds", "1", "--pairs", "2")
    for row in ("raw cryptography verify", "scan_image's trust step, 1 key", "in-process scan_image+verify"):
        assert row in out
    assert "goal (>= 0.80):" in out


def test_signer_benchmark_runs() -> None:
    out = run("signer.py", "--clients", "4", "--seconds", "0.3", "--rounds", "1")
    for row in (
        "file key, EC P-256",
        "file key, RSA-3072",
        "SoftHSM, EC P-256",
        "SoftHSM, RSA-3072",
        "CPU ms/sig",
    ):
        assert row in out
