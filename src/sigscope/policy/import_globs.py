"""Image patterns of policy-controller and Kyverno as sigscope globs that match the same references.

A sigscope glob (issue 14) is matched against a normalised reference, `registry/repository` plus its tag or
digest: `*` matches within one `/`-separated segment, a trailing `/**` one or more whole segments, a glob
that is `**` every reference; a `:TAG` (which may hold `*`) or `@DIGEST` part restricts the tag or digest,
and without one any tag and any digest match. Docker Hub is `docker.io` (`library/` for official images).

The peers match differently, and each translation below keeps the peer's meaning or refuses:

- policy-controller (pkg/apis/glob) turns the glob into a regular expression, `*` into `[^/]*` and `**`
  into `.*`, and matches it against the reference with its tag or digest (`:latest` when none is given) and
  Docker Hub spelled `index.docker.io`. So `*` at the end of the last segment also swallows the tag, and a
  glob without a tag part and without a wildcard there matches only an untagged (`:latest`) reference.
- Kyverno (ext/wildcard) matches `*` across everything, `/` included, and `?` as one character, against
  `registry/path:tag` or `registry/path@digest` (`docker.io` without a registry, `:latest` without a tag).
  So `ghcr.io/acme/*` there is `ghcr.io/acme/**` here; a pattern without a wildcard or tag matches nothing.

Shapes that cannot be said exactly (a `**` or a Kyverno `*` in the middle of a name, `?`, a `*` between
literals in the last segment) raise GlobError; the caller names the field.

:func:`glob_tokens` is the model of the sigscope glob used to find rules that match the same images
(:func:`may_overlap`): the peers apply every matching policy, sigscope only the most specific rule.
"""

from __future__ import annotations

import re

__all__ = ["GlobError", "cip_glob", "glob_tokens", "kyverno_pattern", "may_overlap"]

MAX_GLOB = 255  # the longest reference name (reference.NAME_MAX) is 255 characters

_DOCKER_HUB = "docker.io"
_LEGACY_HUBS = frozenset({"index.docker.io", "registry-1.docker.io"})
_CIP_CHARS = re.compile(r"[A-Za-z0-9_:/*.-]+")  # policy-controller's validGlob
_KYVERNO_CHARS = re.compile(r"[A-Za-z0-9_:/*.@?-]+")
_LITERAL_SEGMENT = re.compile(r"[A-Za-z0-9_.:-]+")
_TAG_PATTERN = re.compile(r"[A-Za-z0-9_.*-]{1,128}")
_DIGEST = re.compile(r"sha(256:[0-9a-f]{64}|512:[0-9a-f]{128})")
_HEX = frozenset("0123456789abcdef")


class GlobError(ValueError):
    """A pattern whose meaning has no sigscope glob; the message says why."""


# ---------------------------------------------------------------------------- policy-controller


def cip_glob(glob: str) -> list[str]:
    """The sigscope globs that together match what policy-controller's `glob` matches."""
    if not glob or len(glob) > MAX_GLOB or not _CIP_CHARS.fullmatch(glob):
        raise GlobError(f"{glob!r} is not a policy-controller glob (letters, digits, - _ : / * . only)")
    # policy-controller's own shorthands for Docker Hub.
    if glob == "*":
        glob = "index.docker.io/library/*"
    elif glob == "*/*":
        glob = "index.docker.io/*/*"
    if glob == "**":
        return ["**"]
    if "**" in glob:
        return _cip_double_star(glob)
    segments = _qualified(glob.split("/"))
    _check_segments(segments, glob)
    *parents, last = segments
    name, colon, tag = last.partition(":")
    if not colon:
        if "*" not in last:
            # Matched against `...:latest`, the glob fits only a reference that names no tag: :latest.
            return ["/".join([*parents, f"{last}:latest"])]
        if last.count("*") > 1 or not last.endswith("*"):
            raise GlobError(f"{glob!r}: a `*` before the end of the last segment also spans the tag here")
        return ["/".join(segments)]
    _check_tag(tag, glob)
    if "*" in name:
        if name.count("*") > 1 or not name.endswith("*"):
            raise GlobError(f"{glob!r}: a `*` before the end of the repository name also spans the tag here")
        if _tag_spans_digests(tag, glob):
            # `[^/]*:[^/]*` also matches `name@sha256:...`: any tag and any digest.
            return ["/".join([*parents, name])]
    return ["/".join(segments)]


def _cip_double_star(glob: str) -> list[str]:
    prefix = glob[:-2]
    if not glob.endswith("**") or "**" in prefix or prefix.endswith("*"):
        raise GlobError(f"{glob!r}: `**` only at the end of a glob has a sigscope equivalent")
    if "/" not in prefix:  # `ghcr.io**`, `inde**`: a registry name prefix, then anything
        if "*" in prefix or ":" in prefix:
            raise GlobError(
                f"{glob!r}: a registry prefix with `*` or `:` before `**` has no sigscope equivalent"
            )
        return [f"{_registry(prefix + '*')}/**"] if prefix else ["**"]
    segments = _qualified(prefix.split("/"))
    *parents, partial = segments
    _check_segments([*parents, partial or "x"], glob)
    if not partial:  # `ghcr.io/acme/**`
        return ["/".join([*parents, "**"])]
    name, colon, tag = partial.partition(":")
    if colon:  # `ghcr.io/acme/app:**`, `...:v1**`: a tag prefix
        if "*" in name or "*" in tag:
            raise GlobError(f"{glob!r}: `*` before a tag `**` has no sigscope equivalent")
        _check_tag(tag + "*", glob)
        return ["/".join([*parents, f"{name}:{tag}*"])]
    if "*" in partial:
        raise GlobError(f"{glob!r}: `*` in a segment that ends in `**` has no sigscope equivalent")
    # `ghcr.io/acme/app**`: repositories whose segment starts with `app`, at any depth below.
    return ["/".join([*parents, f"{partial}*"]), "/".join([*parents, f"{partial}*", "**"])]


# ---------------------------------------------------------------------------- Kyverno


def kyverno_pattern(pattern: str) -> list[str]:
    """The sigscope globs that together match what a Kyverno imageReferences pattern matches."""
    if not pattern or len(pattern) > MAX_GLOB or not _KYVERNO_CHARS.fullmatch(pattern):
        raise GlobError(f"{pattern!r} is not an image reference pattern")
    if "?" in pattern:
        raise GlobError(f"{pattern!r}: `?` (any one character) has no sigscope equivalent")
    if set(pattern) == {"*"}:
        return ["**"]
    name, at, digest = pattern.partition("@")
    if at:
        if not _DIGEST.fullmatch(digest):
            raise GlobError(f"{pattern!r}: only a whole digest after `@` has a sigscope equivalent")
        if "*" in name:
            raise GlobError(f"{pattern!r}: `*` with a digest has no sigscope equivalent")
        return [f"{_kyverno_name(name, pattern)}@{digest}"]
    parents_text, slash, last = name.rpartition("/")
    if not slash:
        raise GlobError(
            f"{pattern!r} names no registry; Kyverno compares it with docker.io/... and it matches no image"
        )
    repo, colon, tag = last.partition(":")
    stem = f"{parents_text}/{repo}"
    if colon:
        _check_tag(tag, pattern)
        if "*" not in repo:
            return [f"{_kyverno_name(stem, pattern)}:{tag}"]
        globs = _kyverno_trailing_star(stem, pattern)
        if _tag_spans_digests(tag, pattern):
            return globs  # `.*:.*` also matches `name@sha256:...`: any tag and any digest
        return [f"{g}:{tag}" for g in globs]
    if "*" not in repo:
        raise GlobError(
            f"{pattern!r} matches no image: Kyverno compares it with the whole reference, tag included "
            f"(write {pattern}:* for any tag)"
        )
    return _kyverno_trailing_star(stem, pattern)


def _kyverno_trailing_star(stem: str, pattern: str) -> list[str]:
    # Kyverno's `*` crosses `/`: `app*` is every repository whose path continues `app...`, at any depth.
    if stem.count("*") > 1 or not stem.endswith("*"):
        raise GlobError(f"{pattern!r}: a `*` before the end of the repository crosses `/` in Kyverno")
    base = _kyverno_name(stem[:-1] + "x", pattern)[:-1]  # validate with a stand-in for the star
    if base.endswith("/"):
        return [base + "**"]
    return [base + "*", base + "*/**"]


def _kyverno_name(name: str, pattern: str) -> str:
    segments = name.split("/")
    if len(segments) < 2 or not _looks_like_host(segments[0]):
        raise GlobError(
            f"{pattern!r} names no registry; Kyverno compares it with docker.io/... and it matches no image"
        )
    for segment in segments:
        if not _LITERAL_SEGMENT.fullmatch(segment):
            raise GlobError(f"{pattern!r}: a `*` before the last segment crosses `/` in Kyverno")
    return "/".join([_registry(segments[0]), *segments[1:]])


# ---------------------------------------------------------------------------- shared


def _qualified(segments: list[str]) -> list[str]:
    """The segments with a registry first: policy-controller matches an unqualified glob only against a
    reference written without one, i.e. a Docker Hub image."""
    first = segments[0]
    if len(segments) > 1 and (_looks_like_host(first) or first == "*"):
        return [_registry(first), *segments[1:]]
    if len(segments) == 1:
        return [_DOCKER_HUB, "library", *segments]
    return [_DOCKER_HUB, *segments]


def _looks_like_host(segment: str) -> bool:
    return segment == "localhost" or "." in segment or ":" in segment


def _registry(host: str) -> str:
    return _DOCKER_HUB if host in _LEGACY_HUBS else host


def _check_segments(segments: list[str], glob: str) -> None:
    # A registry may carry a port; elsewhere a `:` starts the tag, so only the last segment has one.
    for index, segment in enumerate(segments):
        if not segment or (":" in segment and 0 < index < len(segments) - 1):
            raise GlobError(f"{glob!r}: an empty segment or a `:` inside the name")


def _tag_spans_digests(tag: str, glob: str) -> bool:
    """After a `*` that can swallow `@sha256`, whether the tag pattern also matches digests: True for `*`
    (any tag, any digest); an error for a pattern digests could partly match (only hexadecimal literals)."""
    if tag == "*":
        return True
    if not set(tag.replace("*", "")) - _HEX:
        raise GlobError(f"{glob!r}: the tag pattern {tag!r} would also match some digests here")
    return False


def _check_tag(tag: str, glob: str) -> None:
    if not _TAG_PATTERN.fullmatch(tag):
        raise GlobError(f"{glob!r}: {tag!r} is not a tag pattern")


# ---------------------------------------------------------------------------- overlap

# A glob as a sequence of tokens over the reference text: a literal character, STAR (any run without `/`),
# ANY (any run) or a class of characters.
Token = str | tuple[str, frozenset[str]]
STAR = "\x00*"
ANY = "\x00**"
_TAIL = ("class", frozenset(":@"))


def glob_tokens(glob: str) -> tuple[Token, ...]:
    """The glob as tokens matching `registry/repository:tag` or `registry/repository@digest`."""
    if glob == "**":
        return (ANY,)
    name, at, digest = glob.partition("@")
    head, slash, last = name.rpartition("/")
    repo, colon, tag = last.partition(":")
    out: list[Token] = []
    body = f"{head}{slash}{repo}"
    if body.endswith("/**"):
        out.extend(_star_tokens(body[:-3]))
        out.extend(["/", ANY])  # one or more segments (a reference never ends in `/`)
    else:
        out.extend(_star_tokens(body))
    if at:
        out.extend("@" + digest)
    elif colon:
        out.append(":")
        out.extend(_star_tokens(tag))
    else:
        out.extend([_TAIL, STAR])  # a tag or digest never holds `/`
    return tuple(out)


def _star_tokens(text: str) -> list[Token]:
    return [STAR if c == "*" else c for c in text]


def _chars(token: Token) -> frozenset[str] | None:
    """The characters a token may consume; None for every character."""
    if token == ANY:
        return None
    if token == STAR:
        return None  # checked against "/" in _share
    if isinstance(token, tuple):
        return token[1]
    return frozenset(token)


def _share(a: Token, b: Token) -> bool:
    """Whether one character can be consumed by both tokens."""
    slash_free = {t for t in (a, b) if t == STAR}
    ca, cb = _chars(a), _chars(b)
    if ca is None and cb is None:
        return True
    pool = ca & cb if ca is not None and cb is not None else ca if ca is not None else cb
    assert pool is not None
    if slash_free:
        pool = pool - {"/"}
    return bool(pool)


def _repeats(token: Token) -> bool:
    return token in (STAR, ANY)


def may_overlap(a: str, b: str) -> bool:
    """Whether some reference matches both globs (exact on the token model, not a guess)."""
    p, q = glob_tokens(a), glob_tokens(b)
    start = (0, 0)
    seen = {start}
    todo = [start]
    while todo:
        i, j = todo.pop()
        if i == len(p) and j == len(q):
            return True
        steps: list[tuple[int, int]] = []
        if i < len(p) and _repeats(p[i]):
            steps.append((i + 1, j))
        if j < len(q) and _repeats(q[j]):
            steps.append((i, j + 1))
        if i < len(p) and j < len(q) and _share(p[i], q[j]):
            # Consuming one shared character: a repeating token stays, a single one moves on.
            step = (i if _repeats(p[i]) else i + 1, j if _repeats(q[j]) else j + 1)
            if step != (i, j):  # both repeating: covered by the moves above
                steps.append(step)
        for step in steps:
            if step not in seen:
                seen.add(step)
                todo.append(step)
    return False
