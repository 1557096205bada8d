"""Sign images with GPG "simple signing", as `skopeo copy --sign-by FPR` does, into a lookaside store.

The flow (FORMATS §4.1 to 4.5): resolve the reference to a manifest digest, build the "atomic container
signature" payload exactly as containers/image marshals it (Go maps, so sorted keys: `critical` with
`identity.docker-reference` = the reference the user named, tag included, and `image.docker-manifest-digest`;
`optional` with `creator` and `timestamp`), have gpg make a binary signed message over it, and store that at
the first free `<repository>@<algorithm>=<hex>/signature-N` of the image's `lookaside-staging` (else
`lookaside`) from registries.d. Only `file://` stores can be written, and an existing signature is never
replaced.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from sigscope import __version__
from sigscope.errors import UsageError
from sigscope.formats import simplesigning as ss
from sigscope.formats.gojson import go_json
from sigscope.oci import digest as digests
from sigscope.oci.reference import ImageReference, LayoutReference
from sigscope.oci.store import Repository
from sigscope.sources import lookaside

CREATOR = f"sigscope {__version__}"
RESERVED_OPTIONAL = frozenset({"creator", "timestamp"})


class PayloadSigner(Protocol):
    def sign(self, payload: bytes) -> bytes: ...


def atomic_identity(parsed: ImageReference) -> str:
    """The docker-reference containers/image signs: the normalised name with the tag the user gave, or the
    digest when the image was named by digest only."""
    name = f"{parsed.registry}/{parsed.repository}"
    if parsed.tag is not None:
        return f"{name}:{parsed.tag}"
    assert parsed.digest is not None
    return f"{name}@{parsed.digest}"


def check_identity(identity: str) -> str:
    """A `--sign-container-identity` value must be a docker reference with a tag or digest (as the
    default `matchRepoDigestOrExact` rule refuses name-only identities)."""
    if problem := ss.reference_problem(identity):
        raise UsageError(f"signed identity {identity!r} is not a docker reference: {problem}")
    last = identity.partition("@")[0].rsplit("/", 1)[-1]
    if ":" not in last and "@" not in identity:
        raise UsageError(
            f"signed identity {identity!r} names no tag or digest; containers/image policies would refuse it"
        )
    return identity


def build_atomic_payload(
    identity: str, digest: str, *, timestamp: int, optional: Mapping[str, str] | None = None
) -> bytes:
    """The "atomic container signature" JSON, byte for byte as containers/image writes it (sorted keys)."""
    digests.parse(digest)
    extra = dict(optional or {})
    clash = RESERVED_OPTIONAL & set(extra)
    if clash:
        raise UsageError(f"annotation key(s) {', '.join(sorted(clash))} are reserved for the signer")
    opt: dict[str, Any] = {"creator": CREATOR, "timestamp": int(timestamp), **extra}
    payload = {
        "critical": {
            "identity": {"docker-reference": identity},
            "image": {"docker-manifest-digest": digest},
            "type": ss.PAYLOAD_TYPE,
        },
        "optional": {k: opt[k] for k in sorted(opt)},
    }
    data = go_json(payload)
    ss.parse_payload(data)  # what we sign must be what containers/image accepts
    return data


@dataclass(frozen=True)
class SimpleSignResult:
    digest: str
    identity: str
    lookaside: str
    url: str
    payload: bytes
    signature: bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "digest": self.digest,
            "identity": self.identity,
            "lookaside": self.lookaside,
            "signature": self.url,
        }


def lookaside_for_writing(registries_d: lookaside.RegistriesD, parsed: ImageReference) -> str:
    """Where containers/image would write: the most precise registries.d scope's `lookaside-staging`, else
    its `lookaside`, else the built-in per-user (or root) store. HTTP stores are read-only."""
    base = registries_d.lookaside_for(
        parsed.registry, parsed.repository, tag=parsed.tag, digest=parsed.digest, write=True
    )
    if base is None:
        base = lookaside.default_lookaside()
    scheme = base.partition(":")[0].lower()
    if scheme in ("http", "https"):
        raise UsageError(
            f"the lookaside for {parsed.registry}/{parsed.repository} is {scheme}:// and cannot be written; "
            "set a file:// lookaside-staging for it in registries.d and publish the files from there"
        )
    return base


async def sign_simple(
    repository: Repository,
    parsed: ImageReference | LayoutReference,
    reference: str,
    signer: PayloadSigner,
    registries_d: lookaside.RegistriesD,
    *,
    now: datetime,
    identity: str | None = None,
    optional: Mapping[str, str] | None = None,
) -> SimpleSignResult:
    """Resolve, sign and store one simple signature for the image's manifest digest."""
    if isinstance(parsed, LayoutReference):
        raise UsageError(
            "simple signing stores signatures in a registry's lookaside; containers/image keeps none for "
            "oci: layouts (push the image to a registry and sign it there, or use --format cosign)"
        )
    base = lookaside_for_writing(registries_d, parsed)
    descriptor = await repository.resolve(reference)
    signed_identity = check_identity(identity) if identity else atomic_identity(parsed)
    payload = build_atomic_payload(
        signed_identity, descriptor.digest, timestamp=int(now.timestamp()), optional=optional
    )
    blob = signer.sign(payload)
    url = lookaside.write_signature(base, parsed.repository, descriptor.digest, blob)
    return SimpleSignResult(descriptor.digest, signed_identity, base, url, payload, blob)


def load_registries_d(path: str | None) -> lookaside.RegistriesD:
    """`--registries.d DIR`, else the directory containers/image would read."""
    directory = Path(path) if path else lookaside.default_registries_d()
    return lookaside.load_registries_d(directory)
