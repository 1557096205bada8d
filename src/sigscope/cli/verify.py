"""`sigscope verify IMAGE`: does IMAGE carry enough signatures that the supplied keys vouch for?"""

from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.text import Text

from sigscope.cli.discover import discover
from sigscope.cli.options import OUTPUT_BASIC, TrustMaterial, registry_options, trust_options
from sigscope.cli.progress import stdout_console, waiting
from sigscope.errors import EXIT_FAILED, UsageError
from sigscope.formats.notation import DEFAULT_MAX_SIGNATURES
from sigscope.model import Signature
from sigscope.oci.client import RegistryOptions
from sigscope.policy.document import Rule
from sigscope.policy.engine import Decision, context, judge_rule
from sigscope.policy.flags import NOTATION, SIGNATURES, flags_rule
from sigscope.report.cells import printable
from sigscope.report.results import print_results
from sigscope.sign import parse_annotations
from sigscope.trust.apply import TrustSet
from sigscope.trust.certs import utcnow
from sigscope.verify import Policy, Verdict

if TYPE_CHECKING:  # the notation and revocation machinery loads only for --notation-config
    from sigscope.sources.revocation import FetchOptions
    from sigscope.trust.notation_verify import NotationVerdict


@dataclass(frozen=True)
class RevocationOptions:
    """--revocation-timeout / --crl-cache / --no-crl-cache."""

    timeout: float | None = None  # None: notation's 2 s for OCSP, 5 s for CRLs
    crl_cache: str | None = None  # None: ~/.cache/sigscope/crl
    use_cache: bool = True

    def fetch_options(self) -> FetchOptions:
        from sigscope.sources.revocation import CRLCache, FetchOptions, default_cache_dir

        cache = None
        if self.use_cache:
            cache = CRLCache(Path(self.crl_cache) if self.crl_cache else default_cache_dir())
        if self.timeout is None:
            return FetchOptions(cache=cache)
        return FetchOptions(ocsp_timeout=self.timeout, crl_timeout=self.timeout, cache=cache)


def _print_signatures(console: Console, rows: list[tuple[Signature, str, bool, str]]) -> None:
    """One row per judged signature: (signature, status, satisfied, why not)."""
    print_results(
        console,
        ("Format", "Status", "Signer"),
        [
            (
                (str(sig.format), status, sig.signer.display_name if sig.signer is not None else "-"),
                None if satisfied else reason,
            )
            for sig, status, satisfied, reason in rows
        ],
    )


# The result, pass or fail, is standard output's: the table and one summary line, printed once. Standard
# error is for a command that could not run (main turns those errors into one line and exit 2), so a
# script reads the verdict from the exit code and stdout and never has to tell a reason from an error.


def _print_notation(verdict: NotationVerdict) -> None:
    console = stdout_console()
    if verdict.results:
        _print_signatures(
            console, [(r.signature, str(r.status), r.satisfied, r.reason) for r in verdict.results]
        )
    # Logged (not enforced) failures are part of the result: notation prints them beside it too.
    for result in verdict.results:
        for warning in result.warnings:
            line = printable(f"warning: {result.signature.location}: {warning}")
            console.print(line, markup=False, highlight=False, soft_wrap=True)
    console.print(printable(verdict.summary), markup=False, highlight=False, soft_wrap=True)


def _print_pretty(verdict: Verdict) -> None:
    console = stdout_console()
    console.print(Text.assemble((printable(verdict.image), "bold"), " ", printable(verdict.digest)))
    if verdict.signatures:
        rows = [(j.signature, str(j.status), j.satisfied, j.reason) for j in verdict.signatures]
        _print_signatures(console, rows)
    console.print(printable(verdict.summary), markup=False, highlight=False, soft_wrap=True)


@click.command("verify")
@click.argument("image")
@click.option(
    "-a",
    "--annotation",
    "annotations",
    multiple=True,
    metavar="KEY=VALUE",
    help="Require this entry in the payload's optional section (repeatable).",
)
@click.option(
    "--threshold",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Signatures from this many distinct keys must satisfy the policy.",
)
@click.option(
    "--exact-reference",
    is_flag=True,
    help="The payload must name exactly IMAGE's tag or digest (matchExact), not just its repository.",
)
@click.option(
    "--signed-identity",
    metavar="REPO",
    help="The repository payloads must name, instead of IMAGE's; on an oci: layout (a copy) the "
    "repository is checked only when this is given, the digest always.",
)
@click.option(
    "--containers-policy",
    "containers_policy",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    help="Judge IMAGE by this containers-policy.json as skopeo/podman would (signedBy, sigstoreSigned, "
    "scopes); exit 0 accepted, 1 rejected. Replaces --key/--gpg-keyring/-a/--threshold.",
)
@click.option(
    "--max-signatures",
    type=click.IntRange(min=1),
    default=DEFAULT_MAX_SIGNATURES,
    show_default=True,
    help="Notary Project signatures evaluated at most (as notation).",
)
@click.option(
    "--revocation-timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Timeout of each OCSP request and CRL download for Notary Project chains "
    "[default: 2 for OCSP, 5 for CRLs, as notation].",
)
@click.option(
    "--crl-cache",
    metavar="DIR",
    type=click.Path(file_okay=False),
    help="Directory caching downloaded CRLs until their nextUpdate [default: ~/.cache/sigscope/crl].",
)
@click.option("--no-crl-cache", is_flag=True, help="Download every CRL; read and write no cache.")
@click.option("-o", "--output", type=OUTPUT_BASIC, default="pretty", show_default=True)
@trust_options
@registry_options
def verify_cmd(
    image: str,
    containers_policy: str | None,
    annotations: tuple[str, ...],
    threshold: int,
    exact_reference: bool,
    signed_identity: str | None,
    max_signatures: int,
    revocation_timeout: float | None,
    crl_cache: str | None,
    no_crl_cache: bool,
    output: str,
    trust: TrustMaterial,
    registry_options: RegistryOptions,
) -> None:
    """Verify IMAGE's cosign (.sig) and GPG simple signatures against trusted keys.

    A signature counts when it verifies under a supplied key (--key, or --gpg-keyring for simple
    signatures), its payload names IMAGE's digest and repository (exactly IMAGE with --exact-reference)
    and carries every -a annotation. IMAGE passes with --threshold signatures from distinct keys.
    Certificate signatures count when the certificate chains to --ca-roots (or the Fulcio CAs of
    --trusted-root) at the signing time, is valid then, and a SAN matches --certificate-identity[-regexp]
    (and the OIDC issuer --certificate-oidc-issuer[-regexp] when given); --key and certificates may be
    combined, either suffices. With --trusted-root, cosign v3 Sigstore bundles are verified offline.
    Attestations are not considered. Notary Project signatures are judged by notation's trust policy
    and trust store (--notation-config DIR, or --trust-policy FILE --trust-store DIR): IMAGE passes
    when one signature satisfies the statement for its repository (like notation verify); their
    chains' revocation is checked by OCSP, then CRL, over HTTP (--revocation-timeout, --crl-cache). With both
    kinds of trust material, both must pass.

    The result goes to standard output: a row per signature and one summary line, `Verified N of M
    signatures (…)` or `Not verified: <reason>`. Status is the signature's status under the policy:
    verified (it counts; Result ok), rejected (trusted, but a policy check failed: Result says which),
    untrusted, invalid, unverified or integrity-ok (Result says why it does not count). Standard error
    carries only an error that kept the command from running. Exit 0 verified, 1 not verified, 2 usage
    or operational error (including an invalid trust policy or trust store).

    \b
    Examples:
      sigscope verify 127.0.0.1:5000/team/api:1.4 --insecure --key cosign.pub
      sigscope verify oci:./layout:v1 --key a.pub --key b.pub --threshold 2 -a env=prod -o json
      sigscope verify reg.example.com/app:1.0 --gpg-keyring pub.gpg --registries.d ./registries.d
      sigscope verify oci:./layout:v1 --ca-roots ca.pem --certificate-identity release@example.com
      sigscope verify 127.0.0.1:5000/team/api@sha256:… --insecure --notation-config ~/.config/notation
    """
    if containers_policy is not None:
        from sigscope.cli.policy_eval import run_containers_policy

        if not trust.empty or annotations or threshold != 1 or exact_reference or signed_identity:
            raise UsageError(
                "--containers-policy decides by itself: drop --key, --gpg-keyring, -a, --threshold "
                "and --exact-reference"
            )
        code = run_containers_policy(image, containers_policy, trust.registries_d, registry_options, output)
        if code:
            sys.exit(code)
        return
    if trust.empty:
        raise UsageError(
            "verify needs trust material: give --key, --gpg-keyring, --ca-roots/--trusted-root "
            "with --certificate-identity, or --notation-config"
        )
    policy = Policy(
        threshold=threshold,
        exact_reference=exact_reference,
        annotations=parse_annotations(annotations),
        signed_identity=signed_identity,
    )
    material = TrustSet(trust.keys, trust.gpg_keyring, trust.certificates, trust.notation, trust.timestamps)
    rule = flags_rule(material, policy, registries_d=trust.registries_d, max_signatures=max_signatures)
    revocation = RevocationOptions(revocation_timeout, crl_cache, use_cache=not no_crl_cache)
    with waiting(f"Verifying {image}"):
        decision = asyncio.run(_decide(rule, image, registry_options, revocation))
    results = {r.name: r for r in decision.authorities}
    for result in results.values():
        if result.error:
            raise UsageError(result.error)
    notation: NotationVerdict | None = results[NOTATION].detail if NOTATION in results else None
    if SIGNATURES not in results:
        # Only notation trust material: the Notary verdict is the whole answer.
        assert notation is not None
        if output == "json":
            click.echo(json.dumps(notation.to_json(), indent=2))
        else:
            _print_notation(notation)
        if not decision.allowed:
            sys.exit(EXIT_FAILED)
        return
    verdict: Verdict = results[SIGNATURES].detail
    if output == "json":
        out = verdict.to_json()
        if notation is not None:
            out["notation"] = notation.to_json()
        click.echo(json.dumps(out, indent=2))
    else:
        _print_pretty(verdict)
        if notation is not None:
            _print_notation(notation)
    if not decision.allowed:
        sys.exit(EXIT_FAILED)


async def _decide(
    rule: Rule, image: str, registry_options: RegistryOptions, revocation: RevocationOptions
) -> Decision:
    """verify's one-rule policy through the policy engine: discovery without trust material, then each
    authority judges its copy of the records."""
    from sigscope.policy.decide import notation_evidence, scan_options

    now = utcnow()
    _, digest, signatures = await discover(image, registry_options, scan_options(rule, registry_options, now))
    evidence = await notation_evidence(rule, image, digest, signatures, now, revocation.fetch_options())
    return judge_rule(rule, context(image, digest, signatures, now, evidence), "")
