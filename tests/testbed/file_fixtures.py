"""The committed signed-file fixtures (tests/fixtures/files) and what their handler tests share: the test
PKI as trust, one-signature inspection, and mangled copies that must never crash or verify."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from pathlib import Path

from sigscope.errors import SigscopeError
from sigscope.files.base import FileHandler, FileSignature, FileTrust
from sigscope.model import Outcome, Status
from sigscope.trust.certs import load_pem_chain

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "files"
PKI = FIXTURES / "pki"
ROOTS = tuple(load_pem_chain((PKI / "root.crt").read_bytes()))
TRUST = FileTrust(roots=ROOTS)
# The test PKI's subject names, by common name.
SUBJECT = "CN={},O=sigscope tests,C=US"


def only_signature(
    handler: FileHandler, path: Path, verify: bool = True, trust: FileTrust = TRUST
) -> FileSignature:
    signatures = list(handler.inspect(path, verify, trust))
    assert len(signatures) == 1, signatures
    return signatures[0]


def check_outcome(sig: FileSignature, name: str) -> Outcome:
    """The outcome of the one check called `name`."""
    outcomes = {c.outcome for c in sig.checks if c.name == name}
    assert len(outcomes) == 1, sig.checks
    return outcomes.pop()


def bit_flips(data: bytes, rng: random.Random, count: int = 60) -> list[bytes]:
    """`count` copies of `data`, each with one random bit flipped."""
    variants = []
    for _ in range(count):
        flipped = bytearray(data)
        flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        variants.append(bytes(flipped))
    return variants


def inspect_mangled(
    handler: FileHandler,
    target: Path,
    variants: Iterable[bytes],
    on_verified: Callable[[bytes, FileSignature], None],
) -> None:
    """Write each variant to `target` and inspect it with and without verification: a clean
    SigscopeError or signatures that serialize; `on_verified(variant, signature)` asserts why a
    still-verified signature may be."""
    for variant in variants:
        target.write_bytes(variant)
        for verify in (False, True):
            try:
                result = handler.inspect(target, verify, TRUST)
            except SigscopeError:
                continue
            for sig in result:
                sig.to_json()
                if sig.status is Status.VERIFIED:
                    on_verified(variant, sig)
