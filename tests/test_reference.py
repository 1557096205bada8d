"""Reference parsing, checked against the distribution/reference test tables."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from sigscope.errors import InvalidReferenceError
from sigscope.oci.reference import (
    ImageReference,
    LayoutReference,
    is_valid_tag,
    parse_image,
    parse_reference,
    parse_registry_target,
    referrers_tag,
    validate_digest,
)

SHA256 = "sha256:dbcc1c35ac38df41fd2f5e4130b32ffdb93ebae8b3dbe638c23575912276fc9c"
SHA256_F = "sha256:" + "f" * 64
SHA512_F = "sha512:" + "f" * 128
HEX64 = "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a"
LONG_NAMESPACE = "_".join(["this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255"] * 4)
# docker.io/ (10) + 245 = 255, the longest name allowed.
MAX_PATH = "a/" * 122 + "a"


@pytest.mark.parametrize(
    ("text", "registry", "repository", "tag", "digest"),
    [
        ("alpine", "docker.io", "library/alpine", "latest", None),
        ("alpine:3.19", "docker.io", "library/alpine", "3.19", None),
        ("docker.io/alpine", "docker.io", "library/alpine", "latest", None),
        ("docker.io/library/alpine", "docker.io", "library/alpine", "latest", None),
        ("index.docker.io/x", "docker.io", "library/x", "latest", None),
        ("index.docker.io/docker/docker", "docker.io", "docker/docker", "latest", None),
        ("foo/bar", "docker.io", "foo/bar", "latest", None),
        ("library/foo/bar", "docker.io", "library/foo/bar", "latest", None),
        ("docker.io/library/foo/bar", "docker.io", "library/foo/bar", "latest", None),
        ("store/foo/bar", "docker.io", "store/foo/bar", "latest", None),
        ("docker/migrator", "docker.io", "docker/migrator", "latest", None),
        ("test_com/foo", "docker.io", "test_com/foo", "latest", None),
        ("localhost/foo", "localhost", "foo", "latest", None),
        ("localhost:5000/foo/bar:tag", "localhost:5000", "foo/bar", "tag", None),
        ("127.0.0.1:5000/docker/docker", "127.0.0.1:5000", "docker/docker", "latest", None),
        ("127.0.0.1:8000/privatebase", "127.0.0.1:8000", "privatebase", "latest", None),
        ("192.168.0.1:8/debian", "192.168.0.1:8", "debian", "latest", None),
        ("example.com/privatebase", "example.com", "privatebase", "latest", None),
        ("example.com:8000/private/moonbase", "example.com:8000", "private/moonbase", "latest", None),
        ("test-com:8080/foo", "test-com:8080", "foo", "latest", None),
        ("test:5000/repo:tag", "test:5000", "repo", "tag", None),
        ("xn--n3h.com:18080/foo", "xn--n3h.com:18080", "foo", "latest", None),
        ("sub-dom1.foo.com/bar/baz/quux:some-long-tag", "sub-dom1.foo.com", "bar/baz/quux",
         "some-long-tag", None),
        ("b.gcr.io/test.example.com/my-app:test.example.com", "b.gcr.io", "test.example.com/my-app",
         "test.example.com", None),
        ("Foo.com/bar", "Foo.com", "bar", "latest", None),
        # A single component is never a host, even when it looks like one.
        ("192.168.0.1", "docker.io", "library/192.168.0.1", "latest", None),
        ("192.168.1.1:5000", "docker.io", "library/192.168.1.1", "5000", None),
        ("test.com:5000", "docker.io", "library/test.com", "5000", None),
        ("localhost:5000", "docker.io", "library/localhost", "5000", None),
        ("[::1]:5000/repo", "[::1]:5000", "repo", "latest", None),
        ("[fc00::1]:5000/docker/docker", "[fc00::1]:5000", "docker/docker", "latest", None),
        ("[2001:db8::1]/repo:tag", "[2001:db8::1]", "repo", "tag", None),
        ("[fc00:1:2:3:4:5:6:7]:5000/library/debian", "[fc00:1:2:3:4:5:6:7]:5000", "library/debian",
         "latest", None),
        (f"redis@{SHA256}", "docker.io", "library/redis", None, SHA256),
        (f"busybox:latest@{SHA256}", "docker.io", "library/busybox", "latest", SHA256),
        (f"test:5000/repo:tag@{SHA256_F}", "test:5000", "repo", "tag", SHA256_F),
        (f"[2001:db8::1]:5000/repo@{SHA256_F}", "[2001:db8::1]:5000", "repo", None, SHA256_F),
        (f"xn--7o8h.com/myimage:xn--7o8h.com@{SHA512_F}", "xn--7o8h.com", "myimage", "xn--7o8h.com",
         SHA512_F),
        ("foo__bar", "docker.io", "library/foo__bar", "latest", None),
        ("dock__er/docker", "docker.io", "dock__er/docker", "latest", None),
        ("docker---rules/docker", "docker.io", "docker---rules/docker", "latest", None),
        ("d/docker", "docker.io", "d/docker", "latest", None),
        ("jess/t", "docker.io", "jess/t", "latest", None),
        ("lowercase:Uppercase", "docker.io", "library/lowercase", "Uppercase", None),
        ("ubuntu-12.04-base", "docker.io", "library/ubuntu-12.04-base", "latest", None),
        ("thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev", "docker.io",
         "library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev", "latest", None),
        (f"docker.io/{HEX64}", "docker.io", f"library/{HEX64}", "latest", None),
        (HEX64[:63], "docker.io", f"library/{HEX64[:63]}", "latest", None),
        ("repo:" + "t" * 128, "docker.io", "library/repo", "t" * 128, None),
        (MAX_PATH, "docker.io", MAX_PATH, "latest", None),
        ("docker://alpine", "docker.io", "library/alpine", "latest", None),
        ("docker://ghcr.io/org/app:v1", "ghcr.io", "org/app", "v1", None),
    ],
)  # fmt: skip
def test_parse_reference_normalises(
    text: str, registry: str, repository: str, tag: str | None, digest: str | None
) -> None:
    ref = parse_reference(text)
    assert (ref.registry, ref.repository, ref.tag, ref.digest) == (registry, repository, tag, digest)
    assert parse_reference(str(ref)) == ref


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty reference"),
        ("docker://", "empty reference"),
        ("Uppercase/x", "must be lowercase"),
        ("Docker/docker", "must be lowercase"),
        ("Uppercase:tag", "must be lowercase"),
        ("a/B", "must be lowercase"),
        ("docker/Docker", "must be lowercase"),
        ("docker.io/docker/Docker", "must be lowercase"),
        ("test:5000/Uppercase/lowercase:tag", "must be lowercase"),
        ("foo:", "empty tag"),
        ("foo:-bar", "invalid tag"),
        ("foo:.bar", "invalid tag"),
        ("foo:a:b", "invalid tag"),
        ("repo:" + "t" * 129, "invalid tag"),
        ("foo@sha256:short", "invalid digest"),
        ("repo@sha256:ffffffffffffffffffffffffffffffffff", "64 lowercase hex"),
        ("repo@sha256:" + "F" * 64, "64 lowercase hex"),
        ("repo@sha512:" + "f" * 64, "128 lowercase hex"),
        ("validname@invaliddigest:" + "f" * 64, "unsupported digest algorithm"),
        ("foo@", "invalid digest"),
        ("foo@sha256", "invalid digest"),
        ("-foo", "invalid repository name component '-foo'"),
        ("-docker/docker", "invalid repository name component"),
        ("docker-/docker", "invalid repository name component"),
        ("-docker-/docker", "invalid repository name component"),
        ("____/____", "invalid repository name component"),
        ("_docker/_docker", "invalid repository name component"),
        ("dock..er/docker", "invalid registry host 'dock..er'"),
        ("dock_.er/docker", "invalid registry host 'dock_.er'"),
        ("dock-.er/docker", "invalid registry host 'dock-.er'"),
        ("foo___bar", "invalid repository name component 'foo___bar'"),
        ("aa/asdf$$^/aa", "invalid repository name component"),
        ("[fc00::1]", "invalid repository name component"),
        ("[fc00::1]:5000", "invalid repository name component"),
        ("docker///docker", "empty path component"),
        ("docker/", "empty path component"),
        ("docker.io/docker///docker", "empty path component"),
        (":justtag", "missing repository name"),
        (f"@{SHA256_F}", "missing repository name"),
        (HEX64, "image ID"),
        ("https://github.com/docker/docker", "unsupported scheme"),
        ("-docker.io/docker/docker", "invalid registry host '-docker.io'"),
        ("fc00::1:5000/debian", "invalid registry host"),
        ("[fe80::1%eth0]:5000/debian", "invalid registry host"),
        ("[2001:db8:3:4::192.0.2.33]:5000/debian", "invalid registry host"),
        ("host:port/repo", "invalid registry host"),
        ("a/" * 128 + "a:tag", "name too long"),
        ("a/" * 123 + "a", "name too long"),
        (LONG_NAMESPACE + "/docker", "name too long"),
        ("dir:/tmp/image", "transport 'dir:' is not supported"),
        ("docker-daemon:alpine:latest", "transport 'docker-daemon:' is not supported"),
    ],
)
def test_parse_reference_rejects(text: str, problem: str) -> None:
    with pytest.raises(InvalidReferenceError) as caught:
        parse_reference(text)
    message = str(caught.value)
    assert repr(text) in message
    assert problem in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alpine", "docker.io/library/alpine:latest"),
        ("docker.io/alpine:3", "docker.io/library/alpine:3"),
        ("index.docker.io/foo/bar", "docker.io/foo/bar:latest"),
        (f"busybox:latest@{SHA256}", f"docker.io/library/busybox:latest@{SHA256}"),
        (f"redis@{SHA256}", f"docker.io/library/redis@{SHA256}"),
        ("localhost:5000/foo/bar:tag", "localhost:5000/foo/bar:tag"),
        ("[::1]:5000/repo", "[::1]:5000/repo:latest"),
    ],
)
def test_str_is_the_full_normalised_form(text: str, expected: str) -> None:
    assert str(parse_reference(text)) == expected
    assert str(parse_reference(expected)) == expected


def test_default_tag_applies_only_without_tag_or_digest() -> None:
    assert parse_reference("alpine", default_tag="edge").tag == "edge"
    assert parse_reference("alpine:3", default_tag="edge").tag == "3"
    assert parse_reference(f"alpine@{SHA256}", default_tag="edge").tag is None


def test_invalid_default_tag_is_rejected() -> None:
    with pytest.raises(InvalidReferenceError, match="invalid default tag"):
        parse_reference("alpine", default_tag="-bad")


@pytest.mark.parametrize(
    ("text", "reference"),
    [("alpine", "latest"), ("alpine:3", "3"), (f"alpine@{SHA256}", SHA256), (f"alpine:3@{SHA256}", SHA256)],
)
def test_reference_prefers_digest(text: str, reference: str) -> None:
    assert parse_reference(text).reference == reference


@pytest.mark.parametrize(
    ("text", "api"),
    [("alpine", "registry-1.docker.io"), ("ghcr.io/a/b", "ghcr.io"), ("127.0.0.1:5000/x", "127.0.0.1:5000")],
)
def test_api_registry(text: str, api: str) -> None:
    assert parse_reference(text).api_registry == api


def test_with_digest_keeps_tag() -> None:
    ref = parse_reference("alpine:3").with_digest(SHA256)
    assert (ref.tag, ref.digest, ref.reference) == ("3", SHA256, SHA256)
    assert str(ref) == f"docker.io/library/alpine:3@{SHA256}"


def test_with_tag_drops_digest() -> None:
    ref = parse_reference(f"alpine:3@{SHA256}").with_tag("sha256-abc.sig")
    assert (ref.tag, ref.digest, ref.reference) == ("sha256-abc.sig", None, "sha256-abc.sig")


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda r: r.with_tag(""), "empty tag"),
        (lambda r: r.with_tag("a/b"), "invalid tag"),
        (lambda r: r.with_digest("sha256:abc"), "invalid digest"),
    ],
)
def test_with_rejects_bad_values(change: Callable[[ImageReference], ImageReference], problem: str) -> None:
    ref = parse_reference("alpine")
    with pytest.raises(InvalidReferenceError, match=problem):
        change(ref)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        (("docker.io", "../etc", "latest", None), "invalid repository"),
        (("docker.io", "library/alpine", None, None), "needs a tag or a digest"),
        (("bad host", "x", "latest", None), "invalid registry host"),
        (("docker.io", "x", "latest", "md5:abc"), "invalid digest"),
    ],
)
def test_image_reference_guards_hand_built_values(
    fields: tuple[str, str, str | None, str | None], problem: str
) -> None:
    with pytest.raises(InvalidReferenceError, match=problem):
        ImageReference(*fields)


def test_references_are_frozen() -> None:
    ref = parse_reference("alpine")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.tag = "edge"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "path", "tag", "digest"),
    [
        ("oci:/tmp/dir", "/tmp/dir", None, None),
        ("oci:/tmp/dir:v1", "/tmp/dir", "v1", None),
        (f"oci:dir@{SHA256}", "dir", None, SHA256),
        ("oci:./rel:tag", "./rel", "tag", None),
        ("oci:rel", "rel", None, None),
        (f"oci:/tmp/dir:v1@{SHA256}", "/tmp/dir", "v1", SHA256),
        # What follows the last ":" is not a tag, so the colon is part of the path.
        ("oci:/srv/a:b/layout", "/srv/a:b/layout", None, None),
        ("oci:/tmp/dir:-x", "/tmp/dir:-x", None, None),
        ("oci:/srv/a:b/layout:v2", "/srv/a:b/layout", "v2", None),
        # An "@" followed by a "/" belongs to the path.
        ("oci:/tmp/a@b/", "/tmp/a@b/", None, None),
    ],
)
def test_parse_image_layout(text: str, path: str, tag: str | None, digest: str | None) -> None:
    ref = parse_image(text)
    assert ref == LayoutReference(path=path, tag=tag, digest=digest)


@pytest.mark.parametrize(
    "text",
    ["oci:/tmp/dir", "oci:/tmp/dir:v1", f"oci:dir@{SHA256}", "oci:./rel:tag", f"oci:/tmp/dir:v1@{SHA256}"],
)
def test_layout_str_round_trips(text: str) -> None:
    assert str(parse_image(text)) == text


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("oci:", "empty OCI layout path"),
        ("oci::v1", "empty OCI layout path"),
        (f"oci:@{SHA256}", "empty OCI layout path"),
        ("oci:dir@sha256:short", "invalid digest"),
        ("oci:dir@", "invalid digest"),
    ],
)
def test_parse_image_layout_rejects(text: str, problem: str) -> None:
    with pytest.raises(InvalidReferenceError) as caught:
        parse_image(text)
    assert repr(text) in str(caught.value)
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("alpine", ImageReference("docker.io", "library/alpine", "latest", None)),
        ("docker://alpine:3", ImageReference("docker.io", "library/alpine", "3", None)),
        ("oci-archive-like/repo", ImageReference("docker.io", "oci-archive-like/repo", "latest", None)),
        ("oci:x", LayoutReference("x", None, None)),
    ],
)
def test_parse_image_dispatches(text: str, expected: ImageReference | LayoutReference) -> None:
    assert parse_image(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("localhost", ("localhost", "")),
        ("localhost:5000", ("localhost:5000", "")),
        ("myregistry", ("myregistry", "")),
        ("127.0.0.1:5000/team", ("127.0.0.1:5000", "team")),
        ("https://ghcr.io/org/sub/", ("ghcr.io", "org/sub")),
        ("http://registry.local:5000//", ("registry.local:5000", "")),
        ("index.docker.io/library", ("docker.io", "library")),
        ("[::1]:5000/ns", ("[::1]:5000", "ns")),
    ],
)
def test_parse_registry_target(text: str, expected: tuple[str, str]) -> None:
    assert parse_registry_target(text) == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty registry"),
        ("https://", "empty registry"),
        ("ftp://host", "unsupported scheme"),
        ("localhost/Team", "must be lowercase"),
        ("localhost/a//b", "empty path component"),
        ("localhost/ns:tag", "invalid namespace component"),
        ("host:port/x", "invalid registry host"),
        ("-bad/x", "invalid registry host"),
    ],
)
def test_parse_registry_target_rejects(text: str, problem: str) -> None:
    with pytest.raises(InvalidReferenceError) as caught:
        parse_registry_target(text)
    assert repr(text) in str(caught.value)
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    ("digest", "tag"),
    [
        (SHA256, "sha256-" + SHA256.removeprefix("sha256:")),
        (SHA512_F, "sha512-" + "f" * 64),
        ("sha256+b64u:abc=", "sha256-b64u-abc-"),
        ("a" * 40 + ":" + "b" * 10, "a" * 32 + "-" + "b" * 10),
    ],
)
def test_referrers_tag(digest: str, tag: str) -> None:
    assert referrers_tag(digest) == tag
    assert is_valid_tag(tag)


@pytest.mark.parametrize("digest", ["nocolon", "sha256:", ":abc", "SHA256:abc"])
def test_referrers_tag_rejects_malformed_digests(digest: str) -> None:
    with pytest.raises(InvalidReferenceError, match="invalid digest"):
        referrers_tag(digest)


@pytest.mark.parametrize("digest", [SHA256, SHA256_F, SHA512_F])
def test_validate_digest_accepts(digest: str) -> None:
    assert validate_digest(digest) == digest


@pytest.mark.parametrize(
    ("digest", "problem"),
    [
        ("", "expected algorithm:encoded"),
        ("sha256", "expected algorithm:encoded"),
        ("sha256:" + "f" * 63, "exactly 64 lowercase hex"),
        ("sha256:" + "g" * 64, "exactly 64 lowercase hex"),
        ("sha512:" + "f" * 127, "exactly 128 lowercase hex"),
        ("md5:" + "f" * 32, "unsupported digest algorithm 'md5'"),
    ],
)
def test_validate_digest_rejects(digest: str, problem: str) -> None:
    with pytest.raises(InvalidReferenceError) as caught:
        validate_digest(digest)
    assert repr(digest) in str(caught.value)
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    ("tag", "valid"),
    [
        ("latest", True),
        ("v1.2.3-rc_1", True),
        ("_private", True),
        ("UPPER", True),
        ("t" * 128, True),
        ("t" * 129, False),
        ("", False),
        (".hidden", False),
        ("-dash", False),
        ("a/b", False),
        ("a:b", False),
        ("caf\u00e9", False),
    ],
)
def test_is_valid_tag(tag: str, valid: bool) -> None:
    assert is_valid_tag(tag) is valid
