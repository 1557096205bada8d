"""What `inspect --signatures` shows for a signature's timestamp, signing agent and Notary user metadata."""

from __future__ import annotations

import io

from rich.console import Console

from sigscope.cli.tree import signature_tree
from sigscope.model import Signature, SignatureFormat
from sigscope.scan.registry import ImageResult

DIGEST = "sha256:" + "ab" * 32


def render(signature: Signature) -> str:
    result = ImageResult(source="127.0.0.1:5000", repository="app", digest=DIGEST, signatures=[signature])
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(signature_tree("127.0.0.1:5000/app:1", [result]))
    return console.export_text()


def test_notation_metadata_agent_and_countersignature() -> None:
    sig = Signature(SignatureFormat.NOTATION_JWS, DIGEST, "referrer sha256:…")
    sig.claims = {
        "signingAgent": "notation-go/1.0.0",
        "userMetadata": {"buildId": "42", "team": "web"},
        "timestampCountersignature": True,
    }
    text = render(sig)
    assert "signing agent: notation-go/1.0.0" in text
    assert "buildId: 42" in text and "team: web" in text
    assert "countersignature: present" in text
    assert "timestamped: no" in text


def test_cosign_timestamp_claim_says_whether_it_was_verified() -> None:
    sig = Signature(SignatureFormat.COSIGN, DIGEST, "tag sha256-….sig layer 1")
    sig.claims = {"timestamp": {"time": "2026-11-25T10:00:00+00:00", "tsa": "CN=TSA", "verified": False}}
    text = render(sig)
    assert (
        "RFC 3161 timestamp: 2026-11-25T10:00:00+00:00 by CN=TSA (not verified: no TSA roots given)" in text
    )
    sig.claims["timestamp"]["verified"] = True
    sig.timestamped = True
    text = render(sig)
    assert "by CN=TSA (verified)" in text
    assert "timestamped: yes" in text
