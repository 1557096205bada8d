"""Image patterns: `*` within a path segment, `**` across segments, the tag/digest part optional.

Pure. An image is matched by its normalised name (`registry/repository[:tag][@digest]`, Docker Hub names
spelled out as docker normalises them); a pattern without a tag or digest part matches every tag and digest
of the repositories it names. When several patterns match, the most specific wins: an exact reference, then
the longest literal prefix, then the fewer wildcards.
"""

from __future__ import annotations

import functools
import posixpath
import re
from dataclasses import dataclass

from sigscope.errors import InvalidReferenceError
from sigscope.oci.reference import LayoutReference, parse_image

_HOSTLIKE = re.compile(r"[^/]*[.:][^/]*|localhost")


@dataclass(frozen=True)
class Pattern:
    text: str  # as written
    name: re.Pattern[str]
    suffix: re.Pattern[str] | None  # the tag/digest part (":tag", "@digest", ":tag@digest"); None: any
    literal_prefix: int  # characters before the first wildcard of the normalised pattern
    wildcards: int
    exact: bool  # no wildcard at all: a reference

    @property
    def specificity(self) -> tuple[int, int, int]:
        """Larger is more specific."""
        return (1 if self.exact else 0, self.literal_prefix, -self.wildcards)

    def matches(self, image: ImageName) -> bool:
        if not self.name.fullmatch(image.name):
            return False
        return self.suffix is None or self.suffix.fullmatch(image.suffix) is not None

    def sample(self) -> ImageName:
        """An image this pattern matches (each wildcard filled in), for finding overlaps at load time."""
        name, suffix = split_pattern(normalise_pattern(self.text))
        fill = "x"
        return ImageName(
            name.replace("**", f"{fill}/{fill}").replace("*", fill), (suffix or "").replace("*", fill)
        )


@dataclass(frozen=True)
class ImageName:
    name: str  # registry/repository, or oci:PATH
    suffix: str  # ":tag", "@digest", ":tag@digest" or ""

    def __str__(self) -> str:
        return self.name + self.suffix


def split_pattern(text: str) -> tuple[str, str | None]:
    """(name part, tag/digest part or None); a `:` is a tag only in the last path segment."""
    prefix = "oci:" if text.startswith("oci:") else ""
    name, at, digest = text[len(prefix) :].partition("@")
    head, slash, last = name.rpartition("/")
    suffix = ""
    if ":" in last:
        last, _, tag = last.partition(":")
        suffix = f":{tag}"
        name = f"{head}{slash}{last}"
    if at:
        suffix += f"@{digest}"
    return prefix + name, suffix or None


def normalise_pattern(text: str) -> str:
    """Docker Hub spellings as docker normalises a reference: `alpine` is docker.io/library/alpine."""
    if text.startswith("oci:"):
        return text
    first, slash, rest = text.partition("/")
    if "**" in first:
        return text  # it spans registries (`**` alone is every image): no Docker Hub spelling to add
    if not slash or not (_HOSTLIKE.fullmatch(first) or "*" in first):
        first, rest = "docker.io", text
    if first == "index.docker.io":
        first = "docker.io"
    if first == "docker.io" and "/" not in rest.partition("@")[0].partition(":")[0] and "*" not in rest:
        rest = f"library/{rest}"
    return f"{first}/{rest}"


def _glob(text: str, segment: str) -> str:
    out: list[str] = []
    i = 0
    while i < len(text):
        if text.startswith("**", i):
            out.append(".*")
            i += 2
        elif text[i] == "*":
            out.append(f"[^{segment}]*")
            i += 1
        else:
            out.append(re.escape(text[i]))
            i += 1
    return "".join(out)


def _suffix(suffix: str) -> re.Pattern[str]:
    """A tag part matches with or without a digest after it, a digest part with or without a tag before."""
    regex = _glob(suffix, "@")
    if "@" not in suffix:
        regex += "(?:@.*)?"
    elif suffix.startswith("@"):
        regex = "(?::[^@]*)?" + regex
    return re.compile(regex)


def pattern_problem(text: str) -> str | None:
    if any(c.isspace() or ord(c) < 0x20 for c in text):
        return "must not contain white space or control characters"
    if "***" in text:
        return "`***` is not a wildcard (use `*` within a segment or `**` across segments)"
    _, suffix = split_pattern(normalise_pattern(text))
    if suffix is not None and "**" in suffix:
        return "`**` crosses path segments; in a tag or digest use `*`"
    return None


@functools.lru_cache(maxsize=1024)
def compile_pattern(text: str) -> Pattern:
    normalised = normalise_pattern(text)
    name, suffix = split_pattern(normalised)
    first = normalised.find("*")
    wildcards = len(re.findall(r"\*\*|\*", normalised))
    return Pattern(
        text=text,
        name=re.compile(_glob(name, "/")),
        suffix=_suffix(suffix) if suffix is not None else None,
        literal_prefix=len(normalised) if first < 0 else first,
        wildcards=wildcards,
        exact=first < 0,
    )


def image_name(image: str) -> ImageName:
    """The name patterns are matched against; InvalidReferenceError for a reference that does not parse."""
    parsed = parse_image(image)
    if isinstance(parsed, LayoutReference):
        name = "oci:" + posixpath.normpath(parsed.path)
    else:
        name = f"{parsed.registry}/{parsed.repository}"
    # A registry reference without tag or digest is `:latest`, as docker pulls it.
    suffix = f":{parsed.tag}" if parsed.tag else ""
    if parsed.digest:
        suffix += f"@{parsed.digest}"
    return ImageName(name, suffix)


def safe_image_name(image: str) -> ImageName | None:
    try:
        return image_name(image)
    except InvalidReferenceError:
        return None
