"""Real peers for sigscope's tests and benchmarks: a distribution registry, a token server, OCI images.

Benchmarks import it with ``sys.path.insert(0, "<repo>/tests")`` then ``import testbed``.
"""

from __future__ import annotations

from .images import (
    OCI_CONFIG,
    OCI_LAYER_GZIP,
    build_layout,
    canonical_json,
    get_manifest,
    layout_digest,
    push_layout,
    push_many,
    put_tags,
    read_blob,
    sha256_digest,
)
from .notation_vectors import (
    NOTARY_SIGNATURE,
    NotationPush,
    SubjectRefused,
    notation_layout,
    push_notation_vector,
    referrers_tag,
    vectors_available,
)
from .registry import (
    MANIFEST_ACCEPT,
    OCI_INDEX,
    OCI_MANIFEST,
    RegistryExited,
    RegistryHandle,
    free_port,
    make_tls_files,
    refused_port,
    registry_binary,
    start_olareg,
    start_registry,
)
from .signing import (
    COSIGN_SIGNATURE_ANNOTATION,
    COSIGN_SIMPLESIGNING,
    CosignKey,
    GpgHome,
    PeerMissing,
    SignedRegistry,
    build_signed_registry,
    cosign_sig_tag,
    cosign_signature_layers,
    ensure_skopeo13,
    fetch_blob,
    fetch_manifest,
    generate_sigstore_key,
    gpg_policy,
    lookaside_signatures,
    make_cosign_key,
    manifest_digest,
    sign_cosign,
    sign_cosign_existing,
    sign_gpg,
    sigstore_policy,
    skopeo13,
    skopeo_verify,
    stock_skopeo,
    write_registries_d,
)
from .tokenserver import TokenServer, parse_scope

#: Credentials the auth fixtures are configured with.
ALICE_USER = "alice"
ALICE_PASSWORD = "wonderland"
#: Refresh token preconfigured on ``token_registry``'s token server (for docker config ``identitytoken``).
ALICE_REFRESH_TOKEN = "sigscope-test-refresh-token-alice"

__all__ = [
    "ALICE_PASSWORD",
    "ALICE_REFRESH_TOKEN",
    "ALICE_USER",
    "MANIFEST_ACCEPT",
    "OCI_CONFIG",
    "OCI_INDEX",
    "OCI_LAYER_GZIP",
    "OCI_MANIFEST",
    "RegistryExited",
    "RegistryHandle",
    "TokenServer",
    "build_layout",
    "canonical_json",
    "free_port",
    "get_manifest",
    "layout_digest",
    "make_tls_files",
    "parse_scope",
    "push_layout",
    "push_many",
    "put_tags",
    "read_blob",
    "refused_port",
    "registry_binary",
    "sha256_digest",
    "start_olareg",
    "start_registry",
]

# signatures made by real peers (signing.py, notation_vectors.py)
__all__ += [
    "COSIGN_SIGNATURE_ANNOTATION",
    "COSIGN_SIMPLESIGNING",
    "NOTARY_SIGNATURE",
    "CosignKey",
    "GpgHome",
    "NotationPush",
    "PeerMissing",
    "SignedRegistry",
    "SubjectRefused",
    "build_signed_registry",
    "cosign_sig_tag",
    "cosign_signature_layers",
    "ensure_skopeo13",
    "fetch_blob",
    "fetch_manifest",
    "generate_sigstore_key",
    "gpg_policy",
    "lookaside_signatures",
    "make_cosign_key",
    "manifest_digest",
    "notation_layout",
    "push_notation_vector",
    "referrers_tag",
    "sign_cosign",
    "sign_cosign_existing",
    "sign_gpg",
    "sigstore_policy",
    "skopeo13",
    "skopeo_verify",
    "stock_skopeo",
    "vectors_available",
    "write_registries_d",
]
