"""sigscope demo: a throwaway local registry full of signed and unsigned images, and what sigscope reports.

Run through `bash demo/run.sh` (which installs the dependencies first). `--keep` leaves the
registry running so you can try the commands yourself.

What goes in:
- signed/cosign, signed/cosign2, signed/multi: cosign-format signatures made by skopeo 1.18
  (key pairs, the index signed at its digest);
- signed/gpg: a GPG simple signature made by stock skopeo into a lookaside directory;
- signed/notation: a Notary Project COSE signature from notation-go's test vectors (referrers fallback tag);
- team/api: a cosign signature with a certificate from a company CA, chain attached;
- team/tool: a cosign signature with a self-signed certificate;
- team/web: a cosign signature whose payload names another image (invalid);
- library/alpine, team/db, plain/unsigned: unsigned.

Then sigscope signs for itself: a cosign signature with an RFC 3161 timestamp from a local `openssl ts` TSA
and a CycloneDX attestation on team/db, a Notary Project signature (test CA from
`sigscope cert generate-test`) on library/alpine, each verified back; and a filesystem scan of the project's
signed-file fixtures (JAR, PE, MSI, CAB, PowerShell, XML), verified against their test root.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import testbed  # noqa: E402
from testbed.forge import make_pki, pem, push_cosign_signature, push_image  # noqa: E402
from testbed.pki import build_pki  # noqa: E402
from testbed.signing import CosignKey, GpgHome, build_signed_registry, ensure_skopeo13, make_cosign_key  # noqa: E402
from testbed.tsa import TSAServer  # noqa: E402

from sigscope.oci.client import RegistryClient, RegistryOptions  # noqa: E402


def sigscope(*args: str) -> None:
    command = ["sigscope", *args]
    print(f"\n$ {shlex.join(command)}", flush=True)
    result = subprocess.run([sys.executable, "-m", "sigscope", *args], check=False)
    if result.returncode not in (0, 1):
        raise SystemExit(f"demo: sigscope exited with {result.returncode}")


async def add_certificate_signed_images(host: str) -> None:
    pki = make_pki()
    async with RegistryClient(host, RegistryOptions(insecure=True, use_auth_files=False)) as client:
        api = await push_image(client, "team/api", "1.4.2", "api")
        await push_cosign_signature(
            client, "team/api", api.digest, api.digest, pki.leaf_key, cert=pem(pki.leaf), chain=pem(pki.ca)
        )
        tool = await push_image(client, "team/tool", "0.1", "tool")
        await push_cosign_signature(
            client, "team/tool", tool.digest, tool.digest, pki.self_key, cert=pem(pki.self_signed)
        )
        web = await push_image(client, "team/web", "2.0", "web")
        other = await push_image(client, "team/web", "1.9", "web-old")
        await push_cosign_signature(
            client, "team/web", web.digest, other.digest, pki.leaf_key, cert=pem(pki.leaf), chain=pem(pki.ca)
        )
        await push_image(client, "team/db", "15", "db")
        await push_image(client, "library/alpine", "3.20", "alpine")


def sign_with_sigscope(host: str, work: Path, key: CosignKey) -> None:
    """sigscope as the signer: cosign + timestamp, an attestation, and a Notary Project signature."""
    os.environ["COSIGN_PASSWORD"] = key.passphrase  # how cosign users hand over the key password
    print("\n# sigscope signs: cosign format with an RFC 3161 timestamp, an attestation, a Notary signature")
    with TSAServer(build_pki(work / "pki").dir, workdir=work / "tsa") as tsa:
        db = f"{host}/team/db:15"
        sigscope("sign", db, "--insecure", "--key", str(key.private_key), "--timestamp-url", tsa.url)
        sbom = work / "sbom.cdx.json"
        sbom.write_text(json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.5", "components": []}))
        sigscope(
            "attest", db, "--insecure", "--key", str(key.private_key), "--predicate", str(sbom),
            "--type", "cyclonedx",
        )  # fmt: skip
        sigscope(
            "verify", db, "--insecure", "--key", str(key.public_key),
            "--timestamp-certificate-chain", str(tsa.chain_path),
        )  # fmt: skip
        sigscope("verify-attestation", db, "--insecure", "--key", str(key.public_key), "--type", "cyclonedx")

    notation = work / "notation"
    certs = work / "certs"
    sigscope(
        "cert",
        "generate-test",
        "demo.example",
        "--output-dir",
        str(certs),
        "--notation-config",
        str(notation),
    )
    (notation / "trustpolicy.oci.json").write_text(
        json.dumps(
            {
                "version": "1.0",
                "trustPolicies": [
                    {
                        "name": "demo",
                        "registryScopes": ["*"],
                        "signatureVerification": {"level": "strict"},
                        "trustStores": ["ca:demo.example"],
                        "trustedIdentities": ["*"],
                    }
                ],
            }
        )
    )
    alpine = f"{host}/library/alpine:3.20"
    sigscope(
        "sign", alpine, "--insecure", "--format", "notation", "--key", str(certs / "demo.example.key"),
        "--cert", str(certs / "demo.example.crt"),
    )  # fmt: skip
    sigscope("verify", alpine, "--insecure", "--notation-config", str(notation))
    sigscope(
        "scan", "registry", host, "--insecure", "--repo", "team/db", "--repo", "library/alpine",
        "--key", str(key.public_key), "--notation-config", str(notation),
    )  # fmt: skip


def scan_files() -> None:
    fixtures = ROOT / "tests" / "fixtures" / "files"
    print("\n# sigscope scan fs: signed by jarsigner, apksigner, osslsigncode and xmlsec1, tampered ones too")
    kinds = ("jar", "apk", "authenticode", "powershell", "xml")
    root_ca = str(fixtures / "pki" / "root.crt")
    sigscope("scan", "fs", *(str(fixtures / k) for k in kinds), "--verify", "--ca-file", root_ca)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keep", action="store_true", help="leave the registry running until Ctrl-C")
    args = parser.parse_args()
    if testbed.registry_binary() is None:
        raise SystemExit("demo: docker-registry is not installed (run: bash demo/run.sh)")

    with tempfile.TemporaryDirectory(prefix="sigscope-demo-") as tmp:
        work = Path(tmp)
        print("Preparing skopeo 1.18 (cosign-format signing) ...", flush=True)
        skopeo13 = ensure_skopeo13()
        keys = [
            make_cosign_key(skopeo13, work / "keys", f"cosign-{n}", f"demo-passphrase-{n}") for n in range(2)
        ]
        gpg = GpgHome("sigscope demo <demo@sigscope.invalid>")
        signed = None
        try:
            print("Starting a local registry and pushing signed and unsigned images ...", flush=True)
            signed = build_signed_registry(work / "signed", skopeo13=skopeo13, cosign_keys=keys, gpg=gpg)
            asyncio.run(add_certificate_signed_images(signed.host))
            host = signed.host
            registries_d = str(signed.registries_d)
            sigscope("scan", "registry", host, "--insecure", "--registries.d", registries_d, "--platforms")
            sigscope("inspect", f"{host}/team/api:1.4.2", "--insecure", "--signatures")
            # With trust material: the first cosign key and the GPG signer's public key.
            sigscope(
                "scan", "registry", host, "--insecure", "--repo", "signed/*", "--registries.d", registries_d,
                "--key", str(keys[0].public_key), "--gpg-keyring", str(signed.gpg_public_key),
            )  # fmt: skip
            sign_with_sigscope(host, work, keys[0])
            scan_files()
            if args.keep:
                print(
                    f"\nRegistry left running on {host} (plain HTTP: use --insecure; "
                    f"GPG lookaside: --registries.d {registries_d}). Ctrl-C to stop."
                )
                while True:
                    time.sleep(3600)
        except KeyboardInterrupt:
            pass
        finally:
            if signed is not None:
                signed.stop()
            gpg.close()


if __name__ == "__main__":
    main()
