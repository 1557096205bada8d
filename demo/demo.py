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

The real cosign and notation (built from the Go module proxy by scripts/install-peers.sh) sign team/api and
team/web:1.9, and sigscope verifies what they wrote. Then sigscope signs for itself: a cosign signature with
an RFC 3161 timestamp from a local `openssl ts` TSA and a CycloneDX attestation on team/db, a Notary Project
signature (test CA and trust policy from `sigscope cert generate-test`) on library/alpine, each verified back;
a policy document tried on two images and dry-run across the registry (`policy test`, `scan registry
--policy`); and a filesystem scan of the project's signed-file fixtures (JAR, APK, PE, MSI, CAB, PowerShell,
XML), verified against their test root.

Commands are shown as you would type them, with paths relative to the directory they run in (the demo's
scratch directory, or tests/fixtures/files for the file scan); after a table, a note explains each row a
newcomer would question. Everything is meant to read well in a 100-column terminal.
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
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import testbed  # noqa: E402
from testbed.forge import make_pki, pem, push_cosign_signature, push_image  # noqa: E402
from testbed.peers import INSTALL_SCRIPT, peer_path  # noqa: E402
from testbed.pki import build_pki  # noqa: E402
from testbed.signing import (  # noqa: E402
    CosignKey,
    GpgHome,
    SignedRegistry,
    build_signed_registry,
    ensure_skopeo13,
    make_cosign_key,
)
from testbed.tsa import TSAServer  # noqa: E402

from sigscope.oci.client import RegistryClient, RegistryOptions  # noqa: E402

WIDTH = 100  # the demo's text (commands, notes) fits a terminal this wide
# Where commands run, so they can name files relative to it (set by main: the scratch directory).
CWD: Path = Path.cwd()


def shown(command: list[str], width: int = WIDTH) -> str:
    """`$ sigscope …` as one would type it, continued with backslashes to stay within `width` columns; lines
    break only before an option, so an option and its value stay together."""
    units: list[str] = []
    for word in (shlex.quote(w) for w in command):
        if units and not word.startswith("-") and units[-1].startswith("-") and " " not in units[-1]:
            units[-1] += " " + word
        else:
            units.append(word)
    lines: list[str] = []
    line = "$"
    for unit in units:
        if len(line) + 1 + len(unit) > width - 2 and line not in ("$", "   "):
            lines.append(line + " \\")
            line = "   "
        line += " " + unit
    return "\n".join([*lines, line])


def sigscope(*args: str, cwd: Path | None = None) -> None:
    print("\n" + shown(["sigscope", *args]), flush=True)
    result = subprocess.run([sys.executable, "-m", "sigscope", *args], check=False, cwd=cwd or CWD)
    if result.returncode not in (0, 1):
        raise SystemExit(f"demo: sigscope exited with {result.returncode}")


def notes(*rows: tuple[str, str]) -> None:
    """One note per row a newcomer would question: `row` and why it reads as it does."""
    print("\nWhy these rows read as they do:")
    for row, why in rows:
        text = textwrap.fill(f"{row}: {why}", width=WIDTH, initial_indent="  - ", subsequent_indent="    ")
        print(text)
    sys.stdout.flush()


def rel(path: Path) -> str:
    """`path` relative to where the commands run (shorter commands, narrower tables)."""
    try:
        return str(path.relative_to(CWD))
    except ValueError:
        return str(path)


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


def scan_registry(host: str, signed: SignedRegistry) -> None:
    """What sigscope sees without trust material, one image in detail, then with the signers' keys."""
    keys, registries_d = signed.cosign_keys, rel(signed.registries_d)
    sigscope("scan", "registry", host, "--insecure", "--registries.d", registries_d, "--platforms")
    rows = [
        ("signed/cosign, cosign2, multi", "key-only cosign signatures: `unverified` until --key is given"),
        ("signed/multi's platforms", "`unsigned`: skopeo signed the index's digest, not each platform"),
        ("signed/gpg", "a GPG signature from the lookaside (--registries.d); --gpg-keyring verifies it"),
        ("team/api", "`integrity-ok`: signature and chain hold; trusting its CA takes --ca-roots"),
        ("team/tool", "`integrity-ok (self-signed)`: sound, but nobody vouches for a self-signed cert"),
        ("team/web:2.0", "`invalid`: its payload names team/web:1.9's digest (the line under the table)"),
        ("library/alpine, team/db", "unsigned for now: sigscope signs them further down"),
    ]
    if signed.notation is not None:
        rows.insert(
            3, ("signed/notation", "notation-go's self-signed test vector: sound; no trust policy given")
        )
    notes(*rows)

    sigscope("inspect", f"{host}/team/api:1.4.2", "--insecure", "--signatures")

    # With trust material: the first cosign key and the GPG signer's public key.
    sigscope(
        "scan", "registry", host, "--insecure", "--repo", "signed/*", "--registries.d", registries_d,
        "--key", rel(keys[0].public_key), "--gpg-keyring", rel(signed.gpg_public_key),
    )  # fmt: skip
    notes(
        (
            "signed/cosign2",
            "`untrusted`: a row shows its worst signature, and one is by cosign-1 (not given)",
        ),
        ("signed/notation", "still `integrity-ok`: this scan has keys, but no notation trust policy"),
    )
    print("\n# verify asks whether enough signatures hold (--threshold, default 1): cosign2 passes")
    sigscope("verify", f"{host}/signed/cosign2:1.0", "--insecure", "--key", rel(keys[0].public_key))


def sign_with_sigscope(host: str, work: Path, key: CosignKey) -> None:
    """sigscope as the signer: cosign + timestamp, an attestation, and a Notary Project signature."""
    os.environ["COSIGN_PASSWORD"] = key.passphrase  # how cosign users hand over the key password
    print("\n# sigscope signs: cosign format with an RFC 3161 timestamp, an attestation, a Notary signature")
    with TSAServer(build_pki(work / "pki").dir, workdir=work / "tsa") as tsa:
        db = f"{host}/team/db:15"
        sigscope("sign", db, "--insecure", "--key", rel(key.private_key), "--timestamp-url", tsa.url)
        sbom = work / "sbom.cdx.json"
        sbom.write_text(json.dumps({"bomFormat": "CycloneDX", "specVersion": "1.5", "components": []}))
        sigscope(
            "attest", db, "--insecure", "--key", rel(key.private_key), "--predicate", rel(sbom),
            "--type", "cyclonedx",
        )  # fmt: skip
        sigscope(
            "verify", db, "--insecure", "--key", rel(key.public_key),
            "--timestamp-certificate-chain", rel(tsa.chain_path),
        )  # fmt: skip
        sigscope("verify-attestation", db, "--insecure", "--key", rel(key.public_key), "--type", "cyclonedx")

    # A test CA, its leaf, the notation trust store and a trust policy trusting them: all from generate-test.
    sigscope(
        "cert", "generate-test", "demo.example", "--output-dir", "certs", "--notation-config", "notation"
    )
    alpine = f"{host}/library/alpine:3.20"
    sigscope(
        "sign", alpine, "--insecure", "--format", "notation", "--key", "certs/demo.example.key",
        "--cert", "certs/demo.example.crt",
    )  # fmt: skip
    sigscope("verify", alpine, "--insecure", "--notation-config", "notation")
    sigscope(
        "scan", "registry", host, "--insecure", "--repo", "team/db", "--repo", "library/alpine",
        "--key", rel(key.public_key), "--notation-config", "notation",
    )  # fmt: skip


def peer(tool: str, *args: str, env: dict[str, str] | None = None) -> None:
    """Run a peer as its users do, shown like sigscope's commands; its chatter on stderr is left out."""
    binary = peer_path(tool)
    assert binary is not None
    print(f"\n{shown([tool, *args])}", flush=True)
    done = subprocess.run(
        [str(binary), *args], cwd=CWD, env={**os.environ, **(env or {})}, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(f"demo: {tool} failed: {done.stderr.strip()}")


def sign_with_peers(host: str, work: Path) -> None:
    """The real cosign and notation sign; sigscope reads and verifies what they wrote."""
    missing = [tool for tool in ("cosign", "notation") if peer_path(tool) is None]
    if missing:
        print(f"\n# (skipped: {', '.join(missing)} not built; bash {INSTALL_SCRIPT} builds them)")
        return
    print("\n# The real cosign (v3, a Sigstore bundle stored as a referrer) and notation sign two images")
    os.environ["COSIGN_PASSWORD"] = "demo-cosign"
    peer("cosign", "generate-key-pair", "--output-key-prefix", "peer-cosign")
    api = f"{host}/team/api:1.4.2"
    peer(
        "cosign", "sign", "--key", "peer-cosign.key", "-a", "team=api", "--use-signing-config=false",
        "--tlog-upload=false", "--allow-http-registry", "--allow-insecure-registry", "-y", api,
    )  # fmt: skip
    notation_home = {"XDG_CONFIG_HOME": str(work / "notation-home")}
    peer("notation", "cert", "generate-test", "--default", "peer.example", env=notation_home)
    policy = {
        "version": "1.0",
        "trustPolicies": [
            {
                "name": "peer.example",
                "registryScopes": ["*"],
                "signatureVerification": {"level": "strict"},
                "trustStores": ["ca:peer.example"],
                "trustedIdentities": ["*"],
            }
        ],
    }
    config = work / "notation-home" / "notation"
    (config / "trustpolicy.json").write_text(json.dumps(policy, indent=2))
    web = f"{host}/team/web:1.9"
    peer("notation", "sign", "--insecure-registry", web, env=notation_home)
    sigscope("verify", api, "--insecure", "--key", "peer-cosign.pub", "-a", "team=api")
    sigscope("verify", web, "--insecure", "--notation-config", rel(config))
    sigscope(
        "scan", "registry", host, "--insecure", "--repo", "team/api", "--repo", "team/web",
        "--key", "peer-cosign.pub", "--notation-config", rel(config),
    )  # fmt: skip
    notes(
        ("team/api", "two signatures now: the company-CA one from before (`untrusted`: not this key) "
         "and cosign's bundle, `verified` by peer-cosign.pub; the row shows the worst"),
        ("team/web:1.9", "notation's JWS signature, `verified` under the trust policy written above"),
        ("team/web:2.0", "still `invalid`: its old cosign signature names 1.9's digest"),
    )  # fmt: skip


def dry_run_policy(host: str, work: Path, key: CosignKey) -> None:
    """One policy document for every face: `policy test` on two images, then the registry-wide dry run."""
    print("\n# A policy says who must have signed what; `policy test` and `scan registry --policy` say what")
    print("# admission would decide (the same engine as `verify` and `webhook serve`)")
    policy = work / "policy.yaml"
    policy.write_text(
        "apiVersion: sigscope/v1\n"
        "kind: Policy\n"
        "unmatched: deny                  # an image no rule names is denied\n"
        "exemptions:\n"
        '  images: ["*/library/**"]       # `*` within one path segment, `**` across segments\n'
        "rules:\n"
        "  - name: signed\n"
        '    images: ["*/signed/**"]\n'
        "    authorities:\n"
        f"      - {{name: release, key: {{path: {rel(key.public_key)}}}}}\n"
        "  - name: team\n"
        '    images: ["*/team/**"]\n'
        "    mode: warn                     # admit, with a warning\n"
        "    authorities:\n"
        f"      - {{name: release, key: {{path: {rel(key.public_key)}}}}}\n"
    )
    print(f"\n$ cat {rel(policy)}\n{policy.read_text()}", end="", flush=True)
    sigscope("policy", "check", rel(policy))
    images = (f"{host}/signed/cosign:1.0", f"{host}/plain/unsigned:1.0")
    sigscope("policy", "test", "--policy", rel(policy), *images, "--insecure")
    sigscope("scan", "registry", host, "--insecure", "--policy", rel(policy), "--fail-on", "denied")
    notes(
        ("Status", "what the scan knows without trust material (`unverified`: a signature is there); "
         "the Policy column is what each rule's authorities decided with their own keys"),
        ("signed/cosign, signed/cosign2, signed/multi", "allowed: cosign-0, the key rule `signed` "
         "names, signed them"),
        ("signed/gpg, signed/notation", "denied: signed, but the rule has only a key authority; gpg "
         "or notation authorities would admit them"),
        ("team/*", "warn: rule `team` is in warn mode; team/db passes (sigscope signed it with cosign-0)"),
        ("library/alpine", "exempt: decided by name, its signatures never fetched"),
        ("plain/unsigned", "denied by `unmatched: deny`; `--fail-on denied` makes the scan exit 1"),
    )  # fmt: skip


def scan_files() -> None:
    fixtures = ROOT / "tests" / "fixtures" / "files"
    print("\n# sigscope scan fs: signed by jarsigner, apksigner, osslsigncode and xmlsec1, tampered ones too")
    print(f"# (in {fixtures.relative_to(ROOT)}; pki/root.crt is the test root that issued the signers)")
    kinds = ("jar", "apk", "authenticode", "powershell", "xml")
    sigscope("scan", "fs", *kinds, "--verify", "--ca-file", "pki/root.crt", cwd=fixtures)
    notes(
        ("authenticode/tampered-ts.exe, tampered-legacy-ts.exe", "`verified`: the flipped byte is in the "
         "timestamp's own signature, an unsigned attribute the signer never signed: digest and signature "
         "hold, so the timestamp is set aside (a warning in -o json) and the chain is judged now"),
        ("powershell/signed-bad-tsa.ps1", "`verified` too: its TSA lacks timeStamping; timestamp set aside"),
        ("untrusted.exe, signed-untrusted.jar", "`untrusted`: sound, but their CA is not in --ca-file"),
        ("server-only.exe, signed-server-only.jar", "`untrusted`: a serverAuth certificate, not codeSigning"),
        ("(expired) rows", "the signer's certificate expired and no timestamp dates the signature"),
        ("apk/signed-v2-self.apk", "APK signers are self-signed: trusted only if --ca-file holds that cert"),
        ("jar/unsigned-entry.jar, unsigned-in-manifest.jar", "`invalid`: entries added after signing"),
    )  # fmt: skip


def main() -> None:
    global CWD
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keep", action="store_true", help="leave the registry running until Ctrl-C")
    args = parser.parse_args()
    if testbed.registry_binary() is None:
        raise SystemExit("demo: docker-registry is not installed (run: bash demo/run.sh)")

    with tempfile.TemporaryDirectory(prefix="sigscope-demo-") as tmp:
        work = Path(tmp)
        CWD = work
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
            print(f"Registry: {host} (plain HTTP, hence --insecure)\nCommands run in {work}")
            scan_registry(host, signed)
            sign_with_sigscope(host, work, keys[0])
            sign_with_peers(host, work)
            dry_run_policy(host, work, keys[0])
            scan_files()
            if args.keep:
                print(
                    f"\nRegistry left running on {host} (plain HTTP: use --insecure; "
                    f"GPG lookaside: --registries.d {signed.registries_d}). Ctrl-C to stop."
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
