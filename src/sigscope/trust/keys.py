"""Trust in bare public keys (`--key`): the cosign key-pair model.

A signature is verified by a key only when the signature bytes check out under that key; the
face loads the keys, this module only decides.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Iterator, Sequence
from typing import cast

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from sigscope.formats import bundle, dsse
from sigscope.model import Check, Outcome, PublicKeyInfo, Signature, SignatureFormat, SignerIdentity, Status
from sigscope.trust import certs

KEY_FORMATS = frozenset(
    {SignatureFormat.COSIGN, SignatureFormat.COSIGN_ATTESTATION, SignatureFormat.SIGSTORE_BUNDLE}
)


class KeyError_(ValueError):
    """Key bytes that are not a usable public key."""


def load_public_key(data: bytes) -> PublicKeyTypes:
    """A PEM `PUBLIC KEY` (PKIX) or `RSA PUBLIC KEY` (PKCS#1), as cosign writes and reads them."""
    try:
        return serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as exc:
        raise KeyError_(f"not a PEM public key: {exc}") from None


# Enum members looked up once: each `SignatureFormat.COSIGN` is a ~0.1 µs class attribute lookup on
# Python 3.11, and apply_keys runs once per signature of a scan (bench/verify.py).
_COSIGN = SignatureFormat.COSIGN
_INVALID = Status.INVALID
_SKIPPED = Outcome.SKIPPED


def _verifies(signature: Signature, key: PublicKeyTypes) -> bool:
    if signature.format is _COSIGN:
        payload = signature.evidence.get("payload")
        raw = signature.evidence.get("signature")
        return payload is not None and raw is not None and certs.verify_with_key(key, raw, payload)
    if signature.format is SignatureFormat.SIGSTORE_BUNDLE:
        # Key-signed bundles (cosign --key, oci-1-1 mode) carry only a hint: the supplied key decides.
        blob = signature.evidence.get("bundle")
        return blob is not None and bundle.verifies_under(blob, key)
    envelope_bytes = signature.evidence.get("envelope")
    if envelope_bytes is None:
        return False
    try:
        envelope = dsse.parse_envelope(envelope_bytes)
    except dsse.DSSEError:
        return False
    pae = envelope.pae()
    return any(certs.verify_with_key(key, raw, pae) for _, raw in envelope.signatures)


class _Trusted:
    """What every signature a trusted key verifies gets: computed once per key, not per signature.

    Checks and identities are immutable, so the same objects can be shared by all those signatures.
    """

    def __init__(self, key: PublicKeyTypes) -> None:
        self.key = key
        self.info = certs.public_key_info(key)
        detail = f"signed by supplied {self.info.key_type} key sha256:{self.info.sha256}"
        self.signature = Check.passed("signature", detail)
        self.trusted = Check.passed("trusted-key", detail)
        self.signer = SignerIdentity(public_key=self.info)
        # Signatures this key has verified in this process: with several supplied keys, the busiest
        # signer is tried first (an ordering only; see _candidates).
        self.hits = 0


_TRUSTED: dict[int, _Trusted] = {}
# (signature bytes, payload bytes) of cosign signatures a supplied key has verified in this process ->
# that key. Exact bytes and the very key object, so a hit stands for a verify that held; it saves the
# verify when the same signature is met again (mirrored repositories, an index and its platforms).
_VERIFIED: dict[tuple[bytes, bytes], _Trusted] = {}
_VERIFIED_MAX = 4096


def clear_caches() -> None:
    """Forget verified signatures and per-key hit counts (benchmarks measure cold verifies)."""
    _VERIFIED.clear()
    for trusted in _TRUSTED.values():
        trusted.hits = 0


def _trusted(key: PublicKeyTypes) -> _Trusted:
    # Keyed by identity (keys are not hashable); the key itself is kept so its id is never reused.
    cached = _TRUSTED.get(id(key))
    if cached is None or cached.key is not key:
        cached = _TRUSTED[id(key)] = _Trusted(key)
    return cached


def _key_info(key: PublicKeyTypes) -> PublicKeyInfo:
    """The fingerprint of a trusted key, computed once per key object rather than once per signature."""
    return _trusted(key).info


def _could_sign(key: PublicKeyTypes, raw: bytes) -> bool:
    """Whether `raw` has the shape of a signature by this kind of key (no crypto: a length test).

    A supplied RSA key cannot have made a 70-byte DER ECDSA signature; skipping it saves a verify.
    """
    kind = certs.key_kind(key)
    if kind == "ec":
        size = cast(ec.EllipticCurvePublicKey, key).curve.key_size
        return len(raw) <= 2 * ((size + 7) // 8) + 9 and raw[:1] == b"\x30"
    if kind == "rsa":
        return len(raw) == (cast(rsa.RSAPublicKey, key).key_size + 7) // 8
    if kind == "ed25519":
        return len(raw) == 64
    return True


def _candidates(signature: Signature, keys: Sequence[PublicKeyTypes]) -> Iterator[PublicKeyTypes]:
    """The keys worth trying, lazily: the one the signature names (a Rekor-recorded key) first, then
    the keys that verified the most signatures so far (ties in the order given).

    Only an ordering and a filter on impossible shapes: every candidate is still verified.
    """
    if len(keys) == 1:
        yield keys[0]
        return
    raw = signature.evidence.get("signature") if signature.format is _COSIGN else None
    named = signature.signer.public_key if signature.signer is not None else None
    first = None
    if named is not None:
        first = next((key for key in keys if _key_info(key).sha256 == named.sha256), None)
        if first is not None:
            yield first
    # sorted() is stable: with equal counts (signers taking turns) this is the order given, so the
    # ordering never costs more verifies than the fixed order, and a run by one signer costs one each.
    for key in sorted(keys, key=lambda k: -_trusted(k).hits):
        if key is not first and (raw is None or _could_sign(key, raw)):
            yield key


def _cosign_bytes(signature: Signature) -> tuple[bytes, bytes] | None:
    """(signature bytes, payload bytes) of a cosign `.sig` layer: what a remembered verify is keyed on."""
    if signature.format is not _COSIGN:
        return None
    raw = signature.evidence.get("signature")
    payload = signature.evidence.get("payload")
    return None if raw is None or payload is None else (raw, payload)


def _remembered(signed: tuple[bytes, bytes] | None, keys: Sequence[PublicKeyTypes]) -> _Trusted | None:
    """The supplied key that already verified these exact signature and payload bytes, if any."""
    trusted = _VERIFIED.get(signed) if signed is not None and _VERIFIED else None
    if trusted is None or not any(key is trusted.key for key in keys):
        return None
    return trusted


def _remember(signed: tuple[bytes, bytes] | None, trusted: _Trusted) -> None:
    if signed is None:
        return
    if len(_VERIFIED) >= _VERIFIED_MAX:
        del _VERIFIED[next(iter(_VERIFIED))]
    _VERIFIED[signed] = trusted


# Below this many signatures to check, starting threads costs more than the verifies they share out.
PARALLEL_MIN = 64
# Signatures handed to verify_ahead at a time (1024): a quarter of the verified-signature memory, so a
# block's answers are all still remembered when apply_keys reaches them.
AHEAD_BLOCK = _VERIFIED_MAX // 4


def verify_ahead(signatures: Sequence[Signature], keys: Sequence[PublicKeyTypes], threads: int) -> int:
    """Verify the cosign `.sig` signatures among `signatures` under `keys` on `threads` threads, ahead of
    apply_keys; returns how many verified.

    cryptography lets go of the GIL while it verifies, so an image with many signatures is checked on
    several cores. Nothing is decided here: each signature that verified is put in the memory of verified
    signatures (its exact signature and payload bytes -> the very key object that verified them), which
    apply_keys consults first, so it then records the same checks it would have after verifying itself;
    one that did not verify is left for apply_keys, which tries every key again and says so. Hand it
    AHEAD_BLOCK signatures at a time so none is forgotten before apply_keys gets to it (judge_ahead does).
    """
    if threads < 2 or not keys:
        return 0
    work: list[tuple[tuple[bytes, bytes], str | None]] = []
    for signature in signatures:
        if signature.format is not _COSIGN or signature.status is _INVALID:
            continue
        signed = _cosign_bytes(signature)
        if signed is not None and signed not in _VERIFIED:
            named = signature.signer.public_key if signature.signer is not None else None
            work.append((signed, named.sha256 if named is not None else None))
    if len(work) < PARALLEL_MIN:
        return 0
    trusted = [_trusted(key) for key in keys]  # made here: the threads only read them

    def run(
        chunk: list[tuple[tuple[bytes, bytes], str | None]],
    ) -> list[tuple[tuple[bytes, bytes], _Trusted]]:
        # _candidates' order, per thread: the key a signature names, then the keys that verified most
        # (ties in the order given), so signers taking turns cost no more verifies than the fixed order
        # and a run by one signer costs one each.
        found = []
        order = list(trusted)
        hits = dict.fromkeys(map(id, order), 0)
        for signed, named in chunk:
            raw, payload = signed
            candidates = order
            if named is not None:
                hinted = next((t for t in order if t.info.sha256 == named), None)
                if hinted is not None:
                    candidates = [hinted, *(t for t in order if t is not hinted)]
            for candidate in candidates:  # `order` may change below: the loop stops right after
                try:
                    if not _could_sign(candidate.key, raw) or not certs.verify_with_key(
                        candidate.key, raw, payload
                    ):
                        continue
                except Exception:  # whatever it is, apply_keys meets it again on its own thread
                    continue
                found.append((signed, candidate))
                hits[id(candidate)] += 1
                at = order.index(candidate)
                while at and hits[id(order[at - 1])] < hits[id(candidate)]:
                    order[at - 1], order[at] = order[at], order[at - 1]
                    at -= 1
                break
        return found

    chunks = [work[n::threads] for n in range(threads)]
    verified = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
        for found in pool.map(run, chunks):
            for signed, candidate in found:
                _remember(signed, candidate)
                verified += 1
    return verified


def judge_ahead(
    signatures: Sequence[Signature],
    keys: Sequence[PublicKeyTypes],
    threads: int,
    judge: Callable[[Signature], Signature],
) -> list[Signature]:
    """`judge` (apply_keys, or a chain of apply_* ending in it) applied to each signature, with the cosign
    ones verified ahead on `threads` threads first, AHEAD_BLOCK at a time so that none is forgotten
    before `judge` meets it."""
    judged: list[Signature] = []
    for start in range(0, len(signatures), AHEAD_BLOCK):
        block = signatures[start : start + AHEAD_BLOCK]
        verify_ahead(block, keys, threads)
        judged.extend(judge(s) for s in block)
    return judged


def apply_keys(signature: Signature, keys: Sequence[PublicKeyTypes]) -> Signature:
    """Judge `signature` against trusted keys: verified under one of them, or untrusted.

    Signatures already invalid stay invalid, and formats a bare key cannot vouch for
    (Notary, GPG, certificate bundles) are left as they are.
    """
    if not keys or signature.format not in KEY_FORMATS or signature.status is _INVALID:
        return signature
    signed = _cosign_bytes(signature)
    trusted = _remembered(signed, keys)
    if trusted is None:
        if len(keys) == 1:
            # One --key: nothing to order (and no generator to build per signature).
            match = keys[0] if _verifies(signature, keys[0]) else None
        else:
            match = next((key for key in _candidates(signature, keys) if _verifies(signature, key)), None)
        if match is None:
            signature.checks.append(
                Check.failed("trusted-key", f"not signed by any of the {len(keys)} supplied key(s)")
            )
            return signature.settle()
        trusted = _trusted(match)
        _remember(signed, trusted)
    trusted.hits += 1
    signature.checks = [
        trusted.signature if c.outcome is _SKIPPED and c.name == "signature" else c for c in signature.checks
    ]
    signature.checks.append(trusted.trusted)
    if signature.signer is None:
        signature.signer = trusted.signer
        signature.claims.pop("keyOnly", None)
    return signature.settle()
