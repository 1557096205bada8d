"""OCI image layout directories, behind the same interface as a registry repository.

A layout holds one "repository": tags are `org.opencontainers.image.ref.name`
annotations in `index.json`. Referrers are found as a registry would answer
them: manifests in `index.json` whose `subject` names the digest, plus the
referrers tag schema index (`sha256-<hex>`), which is also where we write them.

Reads go through sources/localfile.py: regular files only (a FIFO or a device named index.json is an
error, not a hang), within the registry client's size limits, and within a `Boundary` when the layout was
met inside a scanned tree. index.json is parsed once per version of the file (its stat is the key), so
resolving a tag is a dictionary lookup however many tags the layout holds.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from sigscope.errors import IntegrityError, LayoutError, NotFoundError
from sigscope.formats import gojson
from sigscope.model import Descriptor, Manifest
from sigscope.oci import digest as digests
from sigscope.oci import mediatypes, referrers
from sigscope.oci.client import DEFAULT_MAX_BLOB_IN_MEMORY, DEFAULT_MAX_MANIFEST
from sigscope.oci.reference import is_valid_tag, referrers_tag
from sigscope.sources.localfile import ANYWHERE, Boundary, UnsafeFileError, open_regular, read_limited

# A layout on disk is as untrusted as a registry, so it is held to the registry client's limits: a manifest
# or index.json past DEFAULT_MAX_MANIFEST, a blob read into memory past DEFAULT_MAX_BLOB_IN_MEMORY.
DEFAULT_MAX_BLOB = DEFAULT_MAX_BLOB_IN_MEMORY


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class OCILayout:
    def __init__(
        self,
        path: str | Path,
        *,
        create: bool = False,
        max_manifest_size: int = DEFAULT_MAX_MANIFEST,
        max_blob_size: int = DEFAULT_MAX_BLOB,
        boundary: Boundary = ANYWHERE,
    ) -> None:
        self.path = Path(path)
        self.max_manifest_size = max_manifest_size
        self.max_blob_size = max_blob_size
        self.boundary = boundary
        self._index: _Index | None = None
        self._checked: set[str] = set()  # manifests whose bytes were read and matched their digest
        self._subjects: tuple[tuple[int, ...], dict[str, list[Descriptor]]] | None = None
        marker = self.path / "oci-layout"
        if not marker.exists():
            if not create:
                if not self.path.exists():
                    raise LayoutError(f"OCI layout {self.path} does not exist")
                raise LayoutError(f"{self.path} is not an OCI image layout (no oci-layout file)")
            _atomic_write(marker, json.dumps({"imageLayoutVersion": mediatypes.OCI_LAYOUT_VERSION}).encode())
            if not (self.path / "index.json").exists():
                _atomic_write(self.path / "index.json", referrers.serialize(self._empty_index()))

    @property
    def display(self) -> str:
        return f"oci:{self.path}"

    # ----------------------------------------------------------- index.json

    @staticmethod
    def _empty_index() -> dict[str, Any]:
        return {"schemaVersion": 2, "mediaType": mediatypes.OCI_INDEX, "manifests": []}

    def _load_index(self) -> _Index:
        """index.json as of now: parsed again only when its stat says it changed."""
        name = os.path.join(self.path, "index.json")
        try:
            st = os.stat(name) if self.boundary.follow else os.lstat(name)
            cached = self._index
            if cached is not None and cached.key == _stat_key(st):
                return cached
            with open_regular(name, self.boundary, "index.json") as handle:
                key = _stat_key(os.fstat(handle.fileno()))
                raw = read_limited(handle, self.max_manifest_size, name)
        except FileNotFoundError:
            raise LayoutError(f"OCI layout {self.path} has no index.json") from None
        except UnsafeFileError as exc:
            raise LayoutError(f"cannot read {exc.message}") from None
        except OSError as exc:
            raise LayoutError(f"cannot read {name}: {exc.strerror or exc}") from None
        try:
            data = gojson.read(raw, "index.json")
        except ValueError as exc:
            raise LayoutError(f"cannot read {name}: {exc}") from None
        if not isinstance(data, dict) or not isinstance(data.get("manifests", []), list):
            raise LayoutError(f"{name} is not an OCI image index")
        try:
            entries = [Descriptor.from_json(m) for m in data.get("manifests") or []]
        except IntegrityError as exc:
            raise LayoutError(f"{name}: {exc}") from None
        self._index = _Index(key, data, entries)
        return self._index

    def _read_index(self) -> dict[str, Any]:
        """A copy of index.json's document, for a writer to change."""
        # Writers replace "manifests" with a new list and never edit an entry in place: a shallow copy keeps
        # the cached document unchanged.
        return dict(self._load_index().data)

    def _entries(self) -> list[Descriptor]:
        return self._load_index().entries

    def _write_index(self, index: dict[str, Any]) -> None:
        _atomic_write(self.path / "index.json", referrers.serialize(index))
        self._index = None

    # ----------------------------------------------------------------- blobs

    def _blob_path(self, digest: str) -> Path:
        algorithm, encoded = digests.parse(digest)
        return self.path / "blobs" / algorithm / encoded

    def _read_blob(self, digest: str, limit: int, what: str) -> bytes:
        algorithm, encoded = digests.parse(digest)
        # os-level calls on a string path: a signed image's .sig tag can hold a thousand small blobs, and
        # pathlib's joins cost more than reading and hashing them.
        name = os.path.join(self.path, "blobs", algorithm, encoded)
        try:
            with open_regular(name, self.boundary, what) as handle:
                data = read_limited(handle, limit, f"{what} {digest}")
        except FileNotFoundError:
            raise NotFoundError(f"{what} {digest} not found in {self.display}") from None
        except UnsafeFileError as exc:
            raise LayoutError(f"cannot read {exc.message}") from None
        except OSError as exc:
            raise LayoutError(f"cannot read {name}: {exc.strerror or exc}") from None
        # A layout on disk is as untrusted as a registry: bytes must match their name.
        digests.check(data, digest, f"{what} {digest} in {self.display}")
        return data

    def _checked_entry(self, entry: Descriptor) -> Descriptor:
        """`entry` once the manifest behind it hashes to its digest: index.json is a claim, and whatever
        is verified against this digest next (a Notary signature names only the digest) must be about
        these bytes."""
        if entry.digest not in self._checked:
            raw = self._read_blob(entry.digest, self.max_manifest_size, "manifest")
            if entry.size >= 0 and entry.size != len(raw):
                raise IntegrityError(
                    f"manifest {entry.digest} in {self.display} is {len(raw)} bytes, "
                    f"index.json says {entry.size}"
                )
            self._checked.add(entry.digest)
        return entry

    # ------------------------------------------------------- the interface

    async def list_tags(self) -> list[str]:
        tags = []
        for entry in self._entries():
            name = entry.annotations.get(mediatypes.ANNOTATION_REF_NAME)
            if name and name not in tags:
                tags.append(name)
        return tags

    def default_reference(self) -> str:
        """What `oci:DIR` with no tag means: the only image in the layout."""
        entries = [e for e in self._entries() if not _is_attachment_entry(e)]
        if len({e.digest for e in entries}) > 1:
            # Untagged referrers (oras writes them into index.json) are not images to pick either.
            entries = [e for e in entries if not self._has_subject(e)]
        digests_found = {e.digest for e in entries}
        if len(digests_found) == 1:
            return entries[0].digest
        if not digests_found:
            raise NotFoundError(f"{self.display} holds no images")
        tags = sorted({e.annotations.get(mediatypes.ANNOTATION_REF_NAME, "") for e in entries} - {""})
        raise LayoutError(
            f"{self.display} holds {len(digests_found)} images; name one with :TAG or @DIGEST"
            + (f" (tags: {', '.join(tags)})" if tags else "")
        )

    def _has_subject(self, entry: Descriptor) -> bool:
        if entry.annotations.get(mediatypes.ANNOTATION_REF_NAME):
            return False
        try:
            raw = self._read_blob(entry.digest, self.max_manifest_size, "manifest")
            return bool(gojson.read(raw, "manifest").get("subject"))
        except (NotFoundError, IntegrityError, LayoutError, ValueError, AttributeError):
            return False

    async def resolve(self, reference: str) -> Descriptor:
        index = self._load_index()
        if ":" in reference:
            digests.parse(reference)
            entry = index.by_digest.get(reference)
            if entry is not None:
                return self._checked_entry(entry)
            return (await self.get_manifest(reference)).descriptor
        entry = index.by_tag.get(reference)
        if entry is None:
            raise NotFoundError(f"tag {reference!r} not found in {self.display}")
        return self._checked_entry(entry)

    async def get_manifest(self, reference: str) -> Manifest:
        if ":" in reference:
            digest = reference
            known = self._load_index().by_digest.get(digest)
        else:
            known = await self.resolve(reference)
            digest = known.digest
        raw = self._read_blob(digest, self.max_manifest_size, "manifest")
        try:
            declared = gojson.read(raw, f"manifest {digest}").get("mediaType")
        except (ValueError, AttributeError):
            raise IntegrityError(f"manifest {digest} in {self.display} is not a JSON object") from None
        media_type = str(declared or (known.media_type if known else mediatypes.OCI_MANIFEST))
        return Manifest(Descriptor(media_type=media_type, digest=digest, size=len(raw)), raw)

    async def get_blob(self, digest: str, *, max_size: int | None = None) -> bytes:
        return self._read_blob(digest, max_size if max_size is not None else self.max_blob_size, "blob")

    async def put_blob(self, data: bytes, media_type: str = "application/octet-stream") -> Descriptor:
        digest = digests.of(data)
        path = self._blob_path(digest)
        if not path.exists():
            _atomic_write(path, data)
        return Descriptor(media_type=media_type, digest=digest, size=len(data))

    async def put_manifest(self, data: bytes, media_type: str, tag: str | None = None) -> Descriptor:
        if tag is not None and not is_valid_tag(tag):
            raise LayoutError(f"invalid tag {tag!r}")
        descriptor = await self.put_blob(data, media_type)
        descriptor = Descriptor(media_type=media_type, digest=descriptor.digest, size=descriptor.size)
        index = self._read_index()
        manifests = [m for m in index.get("manifests") or [] if isinstance(m, dict)]
        if tag is None:
            if not any(m.get("digest") == descriptor.digest for m in manifests):
                manifests.append(descriptor.to_json())
        else:
            # A tag names one manifest: retag rather than duplicate, as skopeo does.
            manifests = [
                m
                for m in manifests
                if (m.get("annotations") or {}).get(mediatypes.ANNOTATION_REF_NAME) != tag
            ]
            entry = descriptor.to_json()
            entry["annotations"] = {mediatypes.ANNOTATION_REF_NAME: tag}
            manifests.append(entry)
        index["manifests"] = manifests
        self._write_index(index)
        return descriptor

    async def delete_manifest(self, digest: str) -> None:
        digests.parse(digest)
        index = self._read_index()
        manifests = [
            m for m in index.get("manifests") or [] if not (isinstance(m, dict) and m.get("digest") == digest)
        ]
        if len(manifests) == len(index.get("manifests") or []):
            raise NotFoundError(f"manifest {digest} not found in {self.display}")
        index["manifests"] = manifests
        self._write_index(index)

    async def referrers(self, digest: str, artifact_type: str | None = None) -> list[Descriptor]:
        digests.parse(digest)
        found: dict[str, Descriptor] = {}
        tag = referrers_tag(digest)
        entry = self._load_index().by_tag.get(tag)
        if entry is not None and entry.media_type == mediatypes.OCI_INDEX:
            raw = self._read_blob(entry.digest, self.max_manifest_size, "referrers index")
            for d in referrers.parse_index(raw, f"{self.display}:{tag}"):
                found.setdefault(d.digest, d)
        for d in (await self._subject_map()).get(digest, []):
            found.setdefault(d.digest, d)
        return referrers.filter_artifact_type(list(found.values()), artifact_type)

    async def _subject_map(self) -> dict[str, list[Descriptor]]:
        """Subject digest → referrers listed in index.json (oras writes them untagged), built once per
        version of index.json: asked per image, a scan of every manifest each time was quadratic."""
        index = self._load_index()
        if self._subjects is not None and self._subjects[0] == index.key:
            return self._subjects[1]
        subjects: dict[str, list[Descriptor]] = {}
        seen: set[str] = set()
        for entry in index.entries:
            name = entry.annotations.get(mediatypes.ANNOTATION_REF_NAME, "")
            if (
                entry.media_type not in (mediatypes.OCI_MANIFEST, mediatypes.OCI_INDEX)
                or entry.digest in seen
                or _REFERRERS_TAG.match(name)
            ):
                continue
            seen.add(entry.digest)
            try:
                manifest = await self.get_manifest(entry.digest)
                subject = manifest.subject()
            except (NotFoundError, IntegrityError, LayoutError):
                # A broken entry is not a referrer of anything; the scan reports it on its own.
                continue
            if subject is not None:
                subjects.setdefault(subject.digest, []).append(referrers.descriptor_for(manifest))
        self._subjects = (index.key, subjects)
        return subjects

    async def discover_referrers(self, digest: str, *, fallback_tag_listed: bool) -> list[Descriptor]:
        # Local reads are cheap, and oras-style untagged referrers have no tag to list.
        return await self.referrers(digest)

    async def push_referrer(self, data: bytes, media_type: str) -> Descriptor:
        descriptor = await self.put_blob(data, media_type)
        manifest = Manifest(Descriptor(media_type, descriptor.digest, descriptor.size), data)
        subject = manifest.subject()
        if subject is None:
            raise LayoutError("a referrer manifest needs a subject")
        tag = referrers_tag(subject.digest)
        existing: dict[str, Any] | None = None
        entry = self._load_index().by_tag.get(tag)
        if entry is not None:
            if entry.media_type != mediatypes.OCI_INDEX:
                raise LayoutError(
                    f"tag {tag} in {self.display} is not an OCI index; refusing to overwrite it"
                )
            existing = gojson.read(
                self._read_blob(entry.digest, self.max_manifest_size, "referrers index"), "referrers index"
            )
        body, changed = referrers.add_to_index(existing, referrers.descriptor_for(manifest))
        if changed:
            await self.put_manifest(body, mediatypes.OCI_INDEX, tag)
        return Descriptor(media_type, descriptor.digest, descriptor.size)


_ATTACHMENT_TAG = re.compile(r"^sha256-[0-9a-f]{64}(?:\.(?:sig|att|sbom))?$")
_REFERRERS_TAG = re.compile(r"^sha256-[0-9a-f]{64}$")


def _stat_key(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


class _Index:
    """One version of index.json: its document, its entries, and lookups by tag and by digest (for a tag
    named twice, the first entry, as a search from the start would find it)."""

    def __init__(self, key: tuple[int, ...], data: dict[str, Any], entries: list[Descriptor]) -> None:
        self.key = key
        self.data = data
        self.entries = entries
        self.by_tag: dict[str, Descriptor] = {}
        self.by_digest: dict[str, Descriptor] = {}
        for entry in entries:
            name = entry.annotations.get(mediatypes.ANNOTATION_REF_NAME)
            if name:
                self.by_tag.setdefault(name, entry)
            self.by_digest.setdefault(entry.digest, entry)


def _is_attachment_entry(entry: Descriptor) -> bool:
    """Signature and referrers tags ride along with an image; they are not images to pick."""
    return bool(_ATTACHMENT_TAG.match(entry.annotations.get(mediatypes.ANNOTATION_REF_NAME, "")))
