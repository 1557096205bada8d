"""The filesystem scan: walk trees, decide from the first bytes which files may be signed, read those.

Cost is what decides the shape. Walking and reading 4 KiB of every file is the floor (and is I/O the
main process does, one file at a time, because the page cache answers faster than any pool could be
fed). Only files a handler claims are parsed, and only those found signed are hashed whole for the
report; that CPU work goes to `jobs` worker processes, in small batches so the pool's overhead is paid
per batch, not per file, while this process goes on walking: the walk and the parsing overlap, which is
what a pool buys even on two cores. `jobs == 0` runs everything in this process (simple tracebacks,
tests). The pool is started only once a batch of candidates is waiting, so a scan of a few files never
forks; `auto_jobs` is the CLI's default.

OCI image layouts met in the tree (a directory holding `oci-layout` and `index.json`) are not walked
into: they are scanned as the registry scan scans them and their images reported alongside the files.
Errors are data: an unreadable, truncated or corrupt file is a result with an error and the walk goes
on; only a PATH that does not exist stops a scan before it starts.

Nothing outside the PATHs given is read. Without --follow-symlinks no link is followed (a PATH that is
itself a link excepted, as find -H does); with it, a link is followed only when its target lies inside one
of the PATHs, and counted as a skipped link otherwise. The same `Boundary` goes to the workers, for the
files next to a detached signature, and to the layouts met in the tree (sources/localfile.py).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import fnmatch
import hashlib
import os
import stat
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from sigscope.errors import SigscopeError, UsageError
from sigscope.files import detached
from sigscope.files.base import HEAD_SIZE, FileLimits, FileResult, FileTrust
from sigscope.files.cache import ScanCache, stamp
from sigscope.files.registry import HANDLERS, Classifier
from sigscope.scan import usable_cpus
from sigscope.sources.localfile import ANYWHERE, Boundary

# Candidate files per pool task, and tasks in flight per worker before the walk waits for one. Each task
# costs the walking process a submit, a wake-up and the results' unpickling on the pool's thread, all
# under its GIL: bench/scan_fs.py's default scan went from 1.65x to 1.25-1.3x classify-only when batches
# grew from 8 to 32 and the walk stopped waiting on a short queue (4 tasks per worker before).
BATCH = 32
_LIMIT_PER_JOB = 16
LAYOUT_MARKERS = frozenset({"oci-layout", "index.json"})


@dataclass(frozen=True)
class TrustSpec:
    """Trust material as bytes, so it crosses into pool workers (cryptography objects do not pickle)."""

    roots: tuple[bytes, ...] = ()  # DER certificates
    keys: tuple[bytes, ...] = ()  # PEM public keys
    keyrings: tuple[bytes, ...] = ()  # OpenPGP keyrings (binary or armored)
    at: datetime | None = None
    # A Sigstore trusted_root.json and the identity policy keyless bundles must meet: (identity,
    # identity regexp, OIDC issuer, issuer regexp), as the --certificate-* flags give them.
    trusted_root: bytes | None = None
    trusted_root_name: str = "--trusted-root"
    identity: tuple[str | None, str | None, str | None, str | None] = (None, None, None, None)
    # Not trust, but what every handler is handed beside it, and these cross into the workers the same way.
    limits: FileLimits = field(default_factory=FileLimits)
    boundary: Boundary = ANYWHERE

    def build(self) -> FileTrust:
        import warnings

        from cryptography import x509

        from sigscope.trust.keys import load_public_key
        from sigscope.trust.pgp import load_keyrings

        with warnings.catch_warnings():
            # System stores hold a few certificates cryptography warns about (negative serials); a
            # root that is never used must not print into a scan's output.
            warnings.simplefilter("ignore")
            roots = tuple(x509.load_der_x509_certificate(der) for der in self.roots)
        sigstore = None
        if self.trusted_root is not None:
            from sigscope.trust.identity import CertificateTrust, IdentityPolicy
            from sigscope.trust.sigstore_offline import load_trusted_root

            sigstore = CertificateTrust(
                policy=IdentityPolicy.build(*self.identity),
                sigstore=load_trusted_root(self.trusted_root, self.trusted_root_name),
            )
        return FileTrust(
            roots=roots,
            at=self.at or datetime.now(UTC),
            keys=tuple(load_public_key(pem) for pem in self.keys),
            gpg_keyring=load_keyrings(list(self.keyrings)) if self.keyrings else None,
            sigstore=sigstore,
            limits=self.limits,
            boundary=self.boundary,
        )


@dataclass
class FsScanOptions:
    verify: bool = False
    trust: TrustSpec = field(default_factory=TrustSpec)
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    follow_symlinks: bool = False
    jobs: int = 0  # worker processes; 0: everything in this process
    classify_only: bool = False  # decide candidates from their first bytes and stop (benchmarks)
    cache: ScanCache | None = None


@dataclass
class FsStats:
    """What the walk met that is not a result: every regular file counts in `files`."""

    files: int = 0
    candidates: int = 0  # files some handler claimed from their first bytes
    excluded: int = 0
    symlinks_skipped: int = 0
    loops: int = 0  # directories reached again through a symbolic link (with --follow-symlinks)
    special: int = 0  # FIFOs, sockets, devices: never opened
    layouts: int = 0
    cached: int = 0


class Counter:
    """Progress callbacks for the face, batched so a bar costs nothing per file."""

    def __init__(self, on_total: Callable[[int], None], on_advance: Callable[[int], None]) -> None:
        self._on_total = on_total
        self._on_advance = on_advance
        self._total = 0
        self._done = 0

    def found(self) -> None:
        self._total += 1
        if self._total >= 256:
            self.flush()

    def finished(self, n: int = 1) -> None:
        self._done += n
        if self._done >= 256:
            self.flush()

    def flush(self) -> None:
        if self._total:
            self._on_total(self._total)
            self._total = 0
        if self._done:
            self._on_advance(self._done)
            self._done = 0


# ---------------------------------------------------------------- the work on one candidate file


@dataclass
class _Worker:
    """Per-process state: the trust material, built once per process.

    There is no memo of whole answers by content: keying one by the file's hash would hash every
    claimed file whole before parsing it (unsigned ZIPs, compound documents, XML), which a report
    must not pay for. Copies of a signed file are cheap anyway: the handlers parse a signed file in
    well under a millisecond in a report, and the certificates it carries are loaded and summarised
    once per process (pkcs7's certificate cache, certs.summarize's).
    """

    trust: FileTrust = field(default_factory=FileTrust)


_STATE = _Worker()


def _init_worker(spec: TrustSpec) -> None:
    _STATE.trust = spec.build()


def _sha256(path: str) -> str:
    with open(path, "rb") as handle:
        return "sha256:" + hashlib.file_digest(handle, "sha256").hexdigest()


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, SigscopeError):
        return exc.message
    if isinstance(exc, OSError):
        return f"cannot read: {exc.strerror or exc}"
    return f"internal error: {type(exc).__name__}: {exc}"


def inspect_file(path: str, handler_index: int, verify: bool) -> list[FileResult]:
    """Everything one candidate file says; never raises (bulk work reports errors as results)."""
    trust = _STATE.trust
    handler = HANDLERS[handler_index]
    if handler is detached.DETACHED:
        try:
            found = detached.inspect_detached(Path(path), verify, trust)
        except Exception as exc:
            if os.environ.get("SIGSCOPE_DEBUG") and not isinstance(exc, SigscopeError | OSError):
                raise
            return [FileResult(path=path, type=handler.name, error=_error_text(exc))]
        subject = str(found.subject) if found.subject is not None else path
        return [
            FileResult(
                path=subject,
                type=handler.name,
                size=found.size,
                digest=found.digest,
                signatures=found.signatures,
            )
        ]
    result = FileResult(path=path, type=handler.name)
    try:
        result.signatures = list(handler.inspect(Path(path), verify, trust))
        if result.signatures:
            # Only a file that turned out signed is hashed whole: the report's `digest` field.
            result.size = os.stat(path).st_size
            result.digest = _sha256(path)
    except Exception as exc:
        if os.environ.get("SIGSCOPE_DEBUG") and not isinstance(exc, SigscopeError | OSError):
            raise
        result.error = _error_text(exc)
    return [result]


def _inspect_batch(batch: list[tuple[str, int]], verify: bool) -> list[list[FileResult]]:
    return [inspect_file(path, index, verify) for path, index in batch]


# ---------------------------------------------------------------- the walk


@dataclass(frozen=True)
class _Candidate:
    path: str
    handler: int
    stamp: str | None


@dataclass(frozen=True)
class _Layout:
    path: str


def _matches(patterns: Sequence[str], name: str, rel: str) -> bool:
    return any(fnmatch.fnmatchcase(name, p) or fnmatch.fnmatchcase(rel, p) for p in patterns)


def _file_stamp(path: str, st: os.stat_result, follow: bool) -> str:
    """What must be unchanged for a cached answer to stand; a detached signature also depends on its
    signed file, so that file's stamp joins the signature's."""
    text = stamp(st.st_ino, st.st_size, st.st_mtime_ns)
    subject = (
        detached.subject_of(Path(path)) if path.endswith((".asc", ".sig", ".sigstore", ".json")) else None
    )
    if subject is not None:
        try:
            other = os.stat(subject) if follow else os.lstat(subject)
        except OSError:
            return text
        text += ";" + stamp(other.st_ino, other.st_size, other.st_mtime_ns)
    return text


def _child(parent: Path, name: str) -> Path:
    """`parent / name` without re-parsing the parent: a third of the per-file cost of classifying when
    done the public way, on trees where nearly every file is looked at and put down again."""
    make = getattr(parent, "_make_child_relpath", None)
    if make is not None:
        child: Path = make(name)
        return child
    return parent / name


class Walker:
    def __init__(self, options: FsScanOptions, stats: FsStats, counter: Counter | None) -> None:
        self.options = options
        self.stats = stats
        self.counter = counter
        self.visited: set[tuple[int, int]] = set()
        self.classifier = Classifier(HANDLERS)
        self.boundary = options.trust.boundary

    def items(self, roots: Sequence[str]) -> Iterator[_Candidate | _Layout | FileResult]:
        for root in roots:
            try:
                st = os.stat(root) if self.options.follow_symlinks else os.lstat(root)
                if stat.S_ISLNK(st.st_mode):
                    st = os.stat(root)  # a symlink named on the command line is followed, as find -H does
            except OSError as exc:
                yield FileResult(path=root, type="path", error=_error_text(exc))
                continue
            if stat.S_ISDIR(st.st_mode):
                self.visited.add((st.st_dev, st.st_ino))
                yield from self._tree(root)
            elif stat.S_ISREG(st.st_mode):
                found = self._file(root, os.path.basename(root), st)
                if isinstance(found, list):
                    yield from found
                elif found is not None:
                    yield found
            else:
                self.stats.special += 1

    def _tree(self, root: str) -> Iterator[_Candidate | _Layout | FileResult]:
        prefix = len(root.rstrip("/")) + 1
        exclude = self.options.exclude
        follow = self.options.follow_symlinks
        stack = [root]
        while stack:
            directory = stack.pop()
            try:
                with os.scandir(directory) as listing:
                    entries = sorted(listing, key=lambda e: e.name)
            except OSError as exc:
                yield FileResult(path=directory, type="directory", error=_error_text(exc))
                continue
            if LAYOUT_MARKERS <= {e.name for e in entries if e.name in LAYOUT_MARKERS}:
                self.stats.layouts += 1
                yield _Layout(directory)
                continue
            parent = Path(directory)
            subdirs: list[str] = []
            for entry in entries:
                if exclude and _matches(exclude, entry.name, entry.path[prefix:]):
                    self.stats.excluded += 1
                    continue
                try:
                    # Regular files first: nearly every entry is one, and d_type answers without a stat.
                    if entry.is_file(follow_symlinks=False):
                        found = self._file(entry.path, entry.name, None, prefix, entry, parent)
                    elif entry.is_dir(follow_symlinks=False):
                        if follow:
                            st = entry.stat(follow_symlinks=False)
                            self.visited.add((st.st_dev, st.st_ino))
                        subdirs.append(entry.path)
                        continue
                    elif entry.is_symlink():
                        if not follow:
                            self.stats.symlinks_skipped += 1
                            continue
                        found = self._link(entry, prefix, subdirs)
                    else:
                        self.stats.special += 1
                        continue
                except OSError as exc:
                    found = FileResult(path=entry.path, type="file", error=_error_text(exc))
                if found is None:
                    continue
                if isinstance(found, list):
                    yield from found
                else:
                    yield found
            stack.extend(reversed(subdirs))

    def _link(
        self, entry: os.DirEntry[str], prefix: int, subdirs: list[str]
    ) -> _Candidate | FileResult | list[FileResult] | None:
        if not self.boundary.admits(entry.path):
            self.stats.symlinks_skipped += 1  # leads outside the PATHs given: never read
            return None
        try:
            st = os.stat(entry.path)
        except OSError as exc:
            return FileResult(
                path=entry.path, type="symlink", error=f"cannot follow symbolic link: {exc.strerror or exc}"
            )
        if stat.S_ISDIR(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if key in self.visited:
                self.stats.loops += 1
                return None
            self.visited.add(key)
            subdirs.append(entry.path)
            return None
        if stat.S_ISREG(st.st_mode):
            return self._file(entry.path, entry.name, st, prefix)
        self.stats.special += 1
        return None

    def _file(
        self,
        path: str,
        name: str,
        st: os.stat_result | None,
        prefix: int = 0,
        entry: os.DirEntry[str] | None = None,
        parent: Path | None = None,
    ) -> _Candidate | FileResult | list[FileResult] | None:
        """One regular file: a candidate for a handler, a cached answer, an error, or None (not signed)."""
        options = self.options
        if options.include and not _matches(options.include, name, path[prefix:] if prefix else name):
            self.stats.excluded += 1
            return None
        self.stats.files += 1
        counter = self.counter
        if counter is not None:
            counter.found()
        file_stamp: str | None = None
        cache = options.cache
        if cache is not None:
            try:
                st = st or (entry.stat() if entry is not None else os.stat(path))
            except OSError as exc:
                return FileResult(path=path, type="file", error=_error_text(exc))
            file_stamp = _file_stamp(path, st, options.follow_symlinks)
            cached = cache.lookup(path, file_stamp)
            if cached is not None:
                self.stats.cached += 1
                if counter is not None:
                    counter.finished()
                return cached
        try:
            # O_NOFOLLOW: an entry the listing called a regular file must not have become a link since.
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW if entry is not None else os.O_RDONLY)
            try:
                head = os.read(fd, HEAD_SIZE)
            finally:
                os.close(fd)
        except OSError as exc:
            if counter is not None:
                counter.finished()
            return FileResult(path=path, type="file", error=_error_text(exc))
        if head:
            # Most files are nobody's: the classifier rules them out by first byte and extension
            # before any sniff runs or a Path is made.
            candidates = self.classifier.candidates(head, name)
            if candidates:
                file_path = _child(parent, name) if parent is not None else Path(path)
                for index, sniff in candidates:
                    if sniff(head, file_path):
                        self.stats.candidates += 1
                        return _Candidate(path, index, file_stamp)
        if cache is not None and file_stamp is not None:
            cache.store(path, file_stamp, [])
        if counter is not None:
            counter.finished()
        return None


# ---------------------------------------------------------------- OCI layouts in the tree


def scan_layout(path: str, trust: FileTrust) -> list[FileResult]:
    """Every image of one OCI layout with its signatures, as the registry scan finds them, read within
    the scan's boundary (a layout's index.json or blob that is a FIFO, a device or a link out of the tree
    makes the layout, or that image, an error row)."""
    from sigscope.files.detached import from_signature
    from sigscope.oci.layout import OCILayout
    from sigscope.scan.registry import Progress, ScanOptions, scan_repository

    options = ScanOptions(
        now=trust.at or datetime.now(UTC), keys=list(trust.keys), gpg_keyring=trust.gpg_keyring
    )

    async def run() -> list[FileResult]:
        layout = OCILayout(Path(path), boundary=trust.boundary)
        found = []
        source = f"oci:{path}"
        async for image in scan_repository(
            layout, source=source, repo_name="", registry="", options=options, progress=Progress()
        ):
            problems = ([image.error] if image.error else []) + image.problems
            found.append(
                FileResult(
                    path=image.path,
                    type="oci-image",
                    digest=image.digest or None,
                    signatures=[from_signature(s, str(s.format)) for s in image.signatures],
                    error="; ".join(problems) or None,
                )
            )
        return found

    try:
        return asyncio.run(run())
    except SigscopeError as exc:
        return [FileResult(path=f"oci:{path}", type="oci-layout", error=exc.message)]


# ---------------------------------------------------------------- the scan


def check_paths(paths: Sequence[str]) -> None:
    """A PATH that does not exist is a usage error before anything is scanned."""
    for path in paths:
        if not os.path.lexists(path):
            raise UsageError(f"{path}: no such file or directory")


def scan_fs(
    paths: Sequence[str], options: FsScanOptions, stats: FsStats, counter: Counter | None = None
) -> Iterator[FileResult]:
    """Results for signed files, signable-but-unsigned files and unreadable ones, as they complete."""
    check_paths(paths)
    if options.trust.boundary is ANYWHERE:
        boundary = Boundary.of(paths, follow=options.follow_symlinks)
        options = dataclasses.replace(options, trust=dataclasses.replace(options.trust, boundary=boundary))
    _init_worker(options.trust)
    trust = _STATE.trust
    walker = Walker(options, stats, counter)
    items = walker.items(paths)
    if options.classify_only:
        for item in items:
            if isinstance(item, _Candidate):
                yield FileResult(path=item.path, type=HANDLERS[item.handler].name)
            elif isinstance(item, FileResult):
                yield item
        return
    if options.jobs <= 0:
        for item in items:
            if isinstance(item, _Candidate):
                yield from _in_process(options, counter, [item])
            else:
                yield from _passed_on(item, trust)
    else:
        yield from _pooled(items, options, counter, trust)
    if counter is not None:
        counter.flush()


def _passed_on(item: _Layout | FileResult, trust: FileTrust) -> Iterator[FileResult]:
    """What the walk yields besides candidates: an OCI layout to scan, or a result it already has."""
    if isinstance(item, _Layout):
        yield from scan_layout(item.path, trust)
    else:
        yield item


def _in_process(
    options: FsScanOptions, counter: Counter | None, batch: list[_Candidate]
) -> Iterator[FileResult]:
    yield from _done(
        options, counter, batch, [inspect_file(c.path, c.handler, options.verify) for c in batch]
    )


def _done(
    options: FsScanOptions, counter: Counter | None, batch: list[_Candidate], outcomes: list[list[FileResult]]
) -> Iterator[FileResult]:
    for candidate, results in zip(batch, outcomes, strict=True):
        if options.cache is not None and candidate.stamp is not None:
            options.cache.store(candidate.path, candidate.stamp, results)
        if counter is not None:
            counter.finished()
        yield from results


def auto_jobs(verify: bool, cpus: int | None = None) -> int:
    """Worker processes for `--jobs auto`: one per usable CPU, less the one the walk keeps busy in a
    report (a report's parsing is light enough that the walk is half the work); --verify's checks
    outweigh the walk, so it takes every CPU. 0 (no pool) on a single CPU, where a pool only adds
    its overhead. At most 8: past that the one walking process cannot feed them."""
    cpus = usable_cpus() if cpus is None else cpus
    if cpus <= 1:
        return 0
    return min(cpus if verify else cpus - 1, 8)


def _pooled(
    items: Iterator[_Candidate | _Layout | FileResult],
    options: FsScanOptions,
    counter: Counter | None,
    trust: FileTrust,
) -> Iterator[FileResult]:
    in_flight: dict[concurrent.futures.Future[list[list[FileResult]]], list[_Candidate]] = {}
    limit = options.jobs * _LIMIT_PER_JOB
    batch: list[_Candidate] = []
    with contextlib.ExitStack() as stack:
        pool: concurrent.futures.ProcessPoolExecutor | None = None

        def submit() -> None:
            nonlocal pool
            if pool is None:
                # Forked only once a whole batch of candidates waits: before that there is nothing a
                # pool could overlap with the walk, and a tree with a handful of signed files never forks.
                pool = stack.enter_context(
                    concurrent.futures.ProcessPoolExecutor(
                        max_workers=options.jobs, initializer=_init_worker, initargs=(options.trust,)
                    )
                )
            future = pool.submit(_inspect_batch, [(c.path, c.handler) for c in batch], options.verify)
            in_flight[future] = list(batch)
            batch.clear()

        def collect(wait: bool) -> Iterator[FileResult]:
            if not in_flight:
                return
            done, _ = concurrent.futures.wait(
                in_flight,
                timeout=None if wait else 0,
                return_when=concurrent.futures.FIRST_COMPLETED,
            )
            for future in done:
                candidates = in_flight.pop(future)
                yield from _done(options, counter, candidates, future.result())

        for item in items:
            if isinstance(item, _Candidate):
                batch.append(item)
                if len(batch) >= BATCH:
                    submit()
                    yield from collect(wait=len(in_flight) >= limit)
            else:
                yield from _passed_on(item, trust)
        if batch and pool is None:
            yield from _in_process(options, counter, batch)
        elif batch:
            submit()
        while in_flight:
            yield from collect(wait=True)
