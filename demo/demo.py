"""sigscope demo: a throwaway local registry, some images, and what sigscope reports about them.

Run through `bash demo/run.sh` (which installs the dependencies first). `--keep` leaves the
registry running so you can try the commands yourself.
"""

from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import testbed  # noqa: E402


def sigscope(*args: str) -> None:
    command = ["sigscope", *args]
    print(f"\n$ {shlex.join(command)}", flush=True)
    result = subprocess.run([sys.executable, "-m", "sigscope", *args], check=False)
    if result.returncode not in (0, 1):
        raise SystemExit(f"demo: sigscope exited with {result.returncode}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--keep", action="store_true", help="leave the registry running until Ctrl-C")
    args = parser.parse_args()
    if testbed.registry_binary() is None:
        raise SystemExit("demo: docker-registry is not installed (run: bash demo/run.sh)")

    with tempfile.TemporaryDirectory(prefix="sigscope-demo-") as tmp:
        work = Path(tmp)
        handle = testbed.start_registry(work / "registry")
        try:
            host = handle.host
            print(
                f"Local registry (Debian docker-registry) on {host}; pushing images with skopeo ...",
                flush=True,
            )
            layout = work / "layout"
            images = {
                "library/alpine:3.20": ("alpine", None),
                "team/api:1.4.2": ("api", None),
                "team/api:latest": ("api", None),
                "team/web:2.0": ("web", ["amd64", "arm64"]),
                "tools/builder:nightly": ("builder", None),
            }
            for ref, (seed, arches) in images.items():
                repo, _, tag = ref.rpartition(":")
                layout_tag = ref.replace("/", "-").replace(":", "-")
                testbed.build_layout(layout, layout_tag, seed=seed, architectures=arches)
                testbed.push_layout(layout, layout_tag, host, repo, tag)
            sigscope("ls", host, "--insecure")
            sigscope("ls", f"{host}/team", "--tags", "--insecure")
            sigscope("inspect", f"{host}/team/web:2.0", "--insecure")
            sigscope("inspect", f"{host}/library/alpine:3.20", "--insecure", "-o", "json")
            sigscope("inspect", f"oci:{layout}:team-web-2.0")
            if args.keep:
                print(f"\nRegistry left running on {host} (plain HTTP: use --insecure). Ctrl-C to stop.")
                while True:
                    time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            handle.stop()


if __name__ == "__main__":
    main()
