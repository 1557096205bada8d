"""`sigscope scan registry --policy`: the registry-wide dry run. One crawl over a real registry (behind a
counting proxy) with signed, unsigned, attested, exempt, static and unmatched images under a multi-rule
policy; every output format carries the decisions, the pretty summary counts denials per rule, --fail-on
denied sets the exit code, and images decided by name cost no signature request.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console
from testbed import RegistryHandle
from testbed.cli import run_sigscope as run
from testbed.forge import push_cosign_signature, push_image
from testbed.proxy import RegistryProxy

from sigscope.attest import AttestOptions, attest_image
from sigscope.keys import generate, write_key_pair
from sigscope.keys.signer import FileSigner
from sigscope.oci.client import RegistryClient, RegistryOptions
from sigscope.policy import load_policy
from sigscope.report.render import OUTPUTS, make_renderer
from sigscope.report.summary import Summary
from sigscope.scan.registry import ImageResult, Progress, ScanOptions, scan_registry
from sigscope.trust.certs import utcnow

CYCLONEDX = "https://cyclonedx.org/bom"
# repository -> (signed, attested); under dry/ on the proxy
IMAGES = {
    "app/signed": (True, False),
    "app/unsigned": (False, False),
    "app/attested": (True, True),
    "beta/unsigned": (False, False),
    "banned/x": (True, False),  # static deny
    "system/pause": (True, False),  # exempt
    "other/x": (True, False),  # no rule: unmatched deny
}
BY_NAME = ("banned/x", "system/pause", "other/x")


@dataclass
class Dry:
    proxy: RegistryProxy
    policy: Path
    target: str


async def _push(host: str, key: object) -> None:
    signer = FileSigner(key)  # type: ignore[arg-type]
    async with RegistryClient(host, RegistryOptions(insecure=True, use_auth_files=False)) as client:
        for name, (signed, attested) in IMAGES.items():
            repo = f"dry/{name}"
            descriptor = await push_image(client, repo, "1.0", seed=repo)
            if signed:
                await push_cosign_signature(client, repo, descriptor.digest, descriptor.digest, key)  # type: ignore[arg-type]
            if attested:
                options = AttestOptions(CYCLONEDX, {"metadata": {"component": {"name": "api"}}}, utcnow())
                await attest_image(client.repository(repo), "1.0", f"{host}/{repo}", signer, options)


@pytest.fixture(scope="module")
def dry(registry: RegistryHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dry]:
    directory = tmp_path_factory.mktemp("dry-run")
    key = generate("ecdsa-p256")
    write_key_pair(directory / "release", key, "pw")
    with RegistryProxy(registry.url) as proxy:
        asyncio.run(_push(proxy.host, key))
        base = f"{proxy.host}/dry"
        policy = directory / "policy.yaml"
        policy.write_text(
            textwrap.dedent(f"""\
            apiVersion: sigscope/v1
            kind: Policy
            unmatched: deny
            exemptions: {{images: ["{base}/system/**"]}}
            rules:
              - name: prod
                images: ["{base}/app/**"]
                authorities: [{{name: release, key: {{path: release.pub}}}}]
              - name: sbom
                images: ["{base}/app/attested"]
                threshold: 2
                authorities:
                  - {{name: release, key: {{path: release.pub}}}}
                  - name: bom
                    attestation:
                      predicateType: {CYCLONEDX}
                      by: [release]
                      conditions: [{{path: "$.metadata.component.name", equals: api}}]
              - name: beta
                images: ["{base}/beta/**"]
                mode: warn
                authorities: [{{name: release, key: {{path: release.pub}}}}]
              - name: banned
                images: ["{base}/banned/**"]
                static: deny
            """)
        )
        yield Dry(proxy, policy, base)


EXPECTED = {
    "dry/app/signed:1.0": ("allow", "prod"),
    "dry/app/unsigned:1.0": ("deny", "prod"),
    "dry/app/attested:1.0": ("allow", "sbom"),
    "dry/beta/unsigned:1.0": ("warn", "beta"),
    "dry/banned/x:1.0": ("deny", "banned"),
    "dry/system/pause:1.0": ("allow", None),
    "dry/other/x:1.0": ("deny", None),
}


def _scan(dry: Dry) -> list[ImageResult]:
    async def crawl() -> list[ImageResult]:
        options = ScanOptions(now=utcnow(), policy=load_policy(dry.policy))
        async with RegistryClient(dry.proxy.host, RegistryOptions(insecure=True, use_auth_files=False)) as c:
            return [r async for r in scan_registry(c, "dry", options, Progress())]

    return asyncio.run(crawl())


def test_every_format_carries_the_decisions(dry: Dry) -> None:
    dry.proxy.reset()
    results = _scan(dry)
    decided = {r.path: (r.decision.decision, r.decision.rule) for r in results if r.decision}
    assert decided == EXPECTED
    # exempt, static and unmatched images: their tags are listed and resolved, nothing else
    for name in BY_NAME:
        asked = [path for _, path in dry.proxy.requests if f"/dry/{name}/" in path]
        assert asked and all(p.endswith(("/tags/list", "/manifests/1.0")) for p in asked), asked
    assert any("/dry/app/signed/manifests/sha256-" in p for _, p in dry.proxy.requests)  # a rule did ask
    by_name = {r.path: r for r in results}
    assert not by_name["dry/banned/x:1.0"].discovered and by_name["dry/app/signed:1.0"].discovered
    assert "no signatures found" in by_name["dry/app/unsigned:1.0"].decision.reason  # type: ignore[union-attr]

    rendered: dict[str, str] = {}
    for output in OUTPUTS:
        out = io.StringIO()
        console = Console(file=out, width=200, force_terminal=False)
        renderer = make_renderer(output, out, console, dry.proxy.host, policy=True)
        summary = Summary(dry.proxy.host, policy=True)
        for result in results:
            summary.add(result)
            renderer.add(result)
        renderer.finish(summary)
        rendered[output] = out.getvalue()

    document = json.loads(rendered["json"])
    images = {i["path"]: i["decision"] for i in document["images"]}
    assert {p: (d["decision"], d["rule"]) for p, d in images.items()} == EXPECTED
    assert document["registry"]["signatures"]  # sigscan's shape is kept
    assert document["summary"]["policy"]["deniedByRule"] == {"prod": 1, "banned": 1, "(unmatched)": 1}
    assert images["dry/app/attested:1.0"]["policyVersion"].startswith("sha256:")
    lines = [json.loads(line) for line in rendered["ndjson"].splitlines()]
    assert {x["path"]: x["decision"]["decision"] for x in lines if x["type"] == "image"} == {
        p: d for p, (d, _) in EXPECTED.items()
    }
    rows = {r["path"]: r for r in csv.DictReader(io.StringIO(rendered["csv"]))}
    assert {p: (r["decision"], r["rule"] or None) for p, r in rows.items()} == EXPECTED
    assert rows["dry/banned/x:1.0"]["status"] == "unchecked"
    sarif = json.loads(rendered["sarif"])["runs"][0]["results"]
    levels = {
        (r["ruleId"], r["level"], r["properties"]["repository"]) for r in sarif if r["ruleId"] >= "SIG007"
    }
    assert levels == {
        ("SIG007", "error", "dry/app/unsigned"),
        ("SIG007", "error", "dry/banned/x"),
        ("SIG007", "error", "dry/other/x"),
        ("SIG008", "warning", "dry/beta/unsigned"),
    }
    assert not any(r["ruleId"] == "SIG001" and "banned" in r["message"]["text"] for r in sarif)
    assert "deny banned" in rendered["html"] and "warn beta" in rendered["html"]
    for table in ("pretty", "wide"):
        assert "deny prod" in rendered[table] and "allow (exempt)" in rendered[table]
    assert (
        "policy would deny 3 images ((unmatched): 1, banned: 1, prod: 1), warn 1 (beta: 1), allow 3"
        in (rendered["pretty"])
    )


def test_fail_on_denied_and_usage(dry: Dry) -> None:
    scan = ("scan", "registry", dry.target, "--insecure", "--policy", str(dry.policy))
    result = run(*scan, "--fail-on", "denied")
    assert result.returncode == 1, result.stderr
    assert "--fail-on matched: denied" in result.stderr
    assert "policy would deny 3 images" in result.stdout and "denied: " in result.stdout
    # without denials: only the allowed repositories
    result = run(*scan, "--repo", "dry/app/signed", "--fail-on", "denied", "-o", "csv")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0].endswith(",decision,rule,decision_reason,policy_version")
    plain = run("scan", "registry", dry.target, "--insecure", "--repo", "dry/app/signed", "-o", "csv")
    assert plain.stdout.splitlines()[0].endswith(",location,reason,error")  # the header is unchanged
    key = str(dry.policy.parent / "release.pub")
    for extra, message in (
        (("--policy", str(dry.policy), "--key", key), "--policy decides with the trust material it names"),
        (("--fail-on", "denied"), "--fail-on denied needs --policy"),
    ):
        result = run("scan", "registry", dry.target, "--insecure", *extra)
        assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
