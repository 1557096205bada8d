"""Reports for `sigscope scan fs`: one row per signature, in the same seven outputs as the registry scan.

JSON keeps sigscan's filesystem shape — `{"filesystem": {"signatures": [{"path", "digest", "subjectname",
"countersigner", ...}]}, "directories": "a,b"}` — with the richer fields alongside. Unsigned files are not
rows; they are counted in the summary (and signable-but-unsigned ones listed under `unsigned`). Errors are
their own list and appear in every output.
"""

from __future__ import annotations

import html
import io
import os
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Protocol

from rich.console import Console, Group, RenderableType
from rich.table import Table

from sigscope.files.base import FileResult, FileSignature
from sigscope.model import Status
from sigscope.report.cells import Fit, cell, status_cell
from sigscope.report.render import (
    FLOORS,
    OUTPUTS,
    STATUS_STYLE,
    STATUS_WIDTH,
    fitted,
    print_note,
    print_title,
    print_wide,
)
from sigscope.report.scaffold import (
    TOOL,
    certificate_columns,
    csv_writer,
    html_cards,
    html_footer,
    html_head,
    sarif_document,
    sarif_result,
    sarif_signature_problems,
    signature_findings,
    write_document,
    write_line,
)
from sigscope.report.summary import FAIL_ON_CHOICES, counted, worst_status
from sigscope.scan.files import FsStats

__all__ = ["FAIL_ON_CHOICES", "OUTPUTS", "FsSummary", "make_fs_renderer", "signature_entry"]


# ---------------------------------------------------------------- per-signature facts


def subject_name(signature: FileSignature) -> str:
    if signature.signer is not None:
        return signature.signer.display_name
    if signature.pgp is not None:
        pgp = signature.pgp
        return pgp.user_ids[0] if pgp.user_ids else f"OpenPGP key {pgp.key_id}"
    if signature.public_key is not None:
        return f"{signature.public_key.key_type} key sha256:{signature.public_key.sha256[:16]}"
    if signature.details.get("keyOnly"):
        return "key-only (no certificate)"
    return ""


def countersigner(signature: FileSignature) -> str:
    stamp = signature.timestamp
    if stamp is not None and stamp.authority is not None:
        return stamp.authority.display_name
    return ""


def self_signed(signature: FileSignature) -> bool:
    return bool(signature.signer and signature.signer.self_signed)


def expired(signature: FileSignature) -> bool:
    """Expired with no timestamp vouching that it was signed while valid."""
    return bool(signature.signer and signature.signer.expired and signature.timestamp is None)


def signature_entry(result: FileResult, signature: FileSignature) -> dict[str, Any]:
    """One `.filesystem.signatures[]` entry: sigscan's fields first, ours alongside."""
    cert = signature.signer
    stamp = signature.timestamp
    entry: dict[str, Any] = {
        "path": result.path,
        "digest": result.digest or "",
        "subjectname": subject_name(signature),
        "countersigner": countersigner(signature),
        "type": result.type,
        "kind": signature.kind,
        "status": str(signature.status),
        "issuer": cert.issuer if cert else "",
        "serial": cert.serial if cert else "",
        "thumbprint": cert.sha256 if cert else "",
        "size": result.size,
    }
    if cert is not None:
        entry.update(
            {
                "notBefore": cert.not_before.isoformat(),
                "notAfter": cert.not_after.isoformat(),
                "selfSigned": cert.self_signed,
                "expired": cert.expired,
                "eku": list(cert.eku),
                "emails": list(cert.emails),
            }
        )
    entry["digestAlgorithm"] = signature.digest_algorithm
    entry["timestampTime"] = stamp.time.isoformat() if stamp is not None and stamp.time else ""
    entry["timestampAuthority"] = countersigner(signature)
    entry["chainStatus"] = signature.chain_status
    entry["verification"] = str(signature.status)
    entry["reason"] = signature.reason
    entry.update(signature.to_json())
    return entry


def result_status(result: FileResult) -> str:
    if result.error and not result.signatures:
        return "error"
    status = worst_status(result.signatures)
    return str(status) if status is not None else "unsigned"


def findings(result: FileResult) -> set[str]:
    """Which `--fail-on` conditions this result meets ("unsigned": a signable file with no signature)."""
    found: set[str] = set()
    if result.error:
        found.add("error")
    if not result.signatures and not result.error:
        found.add("unsigned")
    return found | signature_findings(result.signatures, self_signed, expired)


@dataclass
class FsSummary:
    directories: str
    signatures: int = 0
    signed_paths: set[str] = field(default_factory=set)
    unsigned: int = 0  # signable files (a handler claimed them) without a signature
    errors: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    types: Counter[str] = field(default_factory=Counter)
    findings: Counter[str] = field(default_factory=Counter)
    stats: FsStats = field(default_factory=FsStats)

    def add(self, result: FileResult) -> None:
        for finding in findings(result):
            self.findings[finding] += 1
        if result.error:
            self.errors += 1
        if result.signatures:
            self.signed_paths.add(result.path)
            self.types[result.type] += 1
        elif not result.error:
            self.unsigned += 1
        for signature in result.signatures:
            self.signatures += 1
            self.statuses[str(signature.status)] += 1
            self.kinds[signature.kind] += 1

    @property
    def line(self) -> str:
        s = self.stats
        text = f"Found {counted(self.signatures, 'signature')} in {len(self.signed_paths)} of {s.files} files"
        extra = []
        if self.unsigned:
            extra.append(f"{counted(self.unsigned, 'signable file')} unsigned")
        if s.layouts:
            extra.append(counted(s.layouts, "OCI layout"))
        if self.errors:
            extra.append(f"{self.errors} could not be read")
        if s.cached:
            extra.append(f"{s.cached} unchanged, from the cache")
        return text + (f" ({'; '.join(extra)})" if extra else "")

    def to_json(self) -> dict[str, Any]:
        s = self.stats
        return {
            "files": s.files,
            "signedFiles": len(self.signed_paths),
            "signatures": self.signatures,
            "unsignedSignable": self.unsigned,
            "candidates": s.candidates,
            "errors": self.errors,
            "excluded": s.excluded,
            "symlinksSkipped": s.symlinks_skipped,
            "symlinkLoops": s.loops,
            "special": s.special,
            "ociLayouts": s.layouts,
            "cached": s.cached,
            "byStatus": dict(self.statuses),
            "byKind": dict(self.kinds),
            "byType": dict(self.types),
            "findings": dict(self.findings),
            "text": self.line,
        }


# ---------------------------------------------------------------- renderers


class FsRenderer(Protocol):
    def add(self, result: FileResult) -> None: ...

    def finish(self, summary: FsSummary) -> None: ...


def _error_entry(result: FileResult) -> dict[str, Any]:
    return {"path": result.path, "type": result.type, "error": result.error}


class _Collector:
    """Keeps the (result, signature) rows and the unreadable results for a renderer that writes at the end."""

    def __init__(self) -> None:
        self.rows: list[tuple[FileResult, FileSignature]] = []
        self.errors: list[FileResult] = []

    def add(self, result: FileResult) -> None:
        self.rows.extend((result, s) for s in result.signatures)
        if result.error:
            self.errors.append(result)


def _flags(signature: FileSignature) -> list[str]:
    return [f for f, on in (("self-signed", self_signed(signature)), ("expired", expired(signature))) if on]


class TableRenderer(_Collector):
    """As the registry scan's (`report.render.TableRenderer`): `pretty` fits the console, `wide` is whole."""

    def __init__(self, console: Console, title: str, *, wide: bool, roots: Sequence[str] = ()) -> None:
        super().__init__()
        self.console = console
        self.title = title
        self.wide = wide
        # Pretty shows paths below the directories scanned (the title names them), as `tree` does: on a narrow
        # terminal the room goes to what differs from row to row.
        base = os.path.commonpath(roots) if roots else ""
        self.base = "" if base in ("", ".", "/") else base.rstrip("/") + "/"

    def _shown(self, path: str) -> str:
        return path[len(self.base) :] if self.base and path.startswith(self.base) else path

    def _sorted(self) -> list[tuple[FileResult, FileSignature]]:
        return sorted(self.rows, key=lambda r: r[0].path)

    def _pretty(self, compact: bool) -> tuple[Table, dict[int, tuple[int, int]]]:
        """Compact, for a narrow console: the countersigner beneath the signer, flags beneath the status.
        Returned with its flexible columns, for `shrink_to_fit`."""
        table = Table()
        table.add_column("Path")
        table.add_column("Type", no_wrap=True)
        table.add_column("Signer")
        if not compact:
            table.add_column("Countersigner")
        table.add_column("Status", no_wrap=True, min_width=STATUS_WIDTH)
        for result, signature in self._sorted():
            status = str(signature.status)
            signer = Fit(subject_name(signature), where="end")
            stamp = countersigner(signature)
            cells: list[RenderableType] = [Fit(self._shown(result.path)), cell(signature.kind)]
            if not compact:
                cells += [signer, Fit(stamp, where="end")]
            elif stamp:
                cells.append(Group(signer, Fit(f"countersigned by {stamp}", style="dim", where="end")))
            else:
                cells.append(signer)
            cells.append(
                status_cell(status, STATUS_STYLE.get(status, ""), _flags(signature), stacked=compact)
            )
            table.add_row(*cells)
        path, name = FLOORS[compact]
        flexible = {0: (3, path), 2: (2, name)}
        if not compact:
            flexible[3] = (1, name)
        return table, flexible

    def _wide(self, *, details: bool) -> Table:
        table = Table()
        for name in ("Path", "Type", "Signer", "Countersigner", "Issuer", "Digest", "Serial / thumbprint"):
            table.add_column(name, no_wrap=True)
        for name in ("Timestamp", "Chain", "Status", *(["Details"] if details else [])):
            table.add_column(name, no_wrap=True)
        for result, signature in self._sorted():
            cert = signature.signer
            stamp = signature.timestamp
            status = str(signature.status)
            cells: list[RenderableType] = [
                cell(result.path),
                cell(signature.kind),
                cell(subject_name(signature)),
                cell(countersigner(signature)),
                cell(cert.issuer if cert else ""),
                cell(result.digest or ""),
                cell(f"{cert.serial} {cert.sha256}" if cert else ""),
                cell(stamp.time.isoformat() if stamp is not None and stamp.time else ""),
                cell(signature.chain_status),
                status_cell(status, STATUS_STYLE.get(status, ""), _flags(signature), stacked=False),
            ]
            if details:
                cells.append(cell("; ".join(_details(signature))))
            table.add_row(*cells)
        return table

    def finish(self, summary: FsSummary) -> None:
        console = self.console
        print_title(console, self.title, whole=self.wide)
        if self.wide:
            print_wide(
                console,
                lambda details: self._wide(details=details),
                lambda: ((r.path, detail) for r, s in self._sorted() for detail in _details(s)),
            )
        else:
            console.print(fitted(console, self._pretty))
            for result, signature in self.rows:
                if signature.status is Status.INVALID:
                    where = self._shown(result.path)
                    print_note(console, "invalid", where, f"{signature.kind}: {signature.reason}")
        for result in sorted(self.errors, key=lambda r: r.path):
            where = result.path if self.wide else self._shown(result.path)
            print_note(console, "error", where, result.error or "", whole=self.wide)
        console.print(cell(summary.line))


def _details(signature: FileSignature) -> list[str]:
    return [d for d in (signature.location, signature.reason) if d]


class JSONRenderer:
    def __init__(self, out: IO[str], directories: str) -> None:
        self.out = out
        self.directories = directories
        self.entries: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self.unsigned: list[str] = []

    def add(self, result: FileResult) -> None:
        self.entries.extend(signature_entry(result, s) for s in result.signatures)
        if result.error:
            self.errors.append(_error_entry(result))
        elif not result.signatures:
            self.unsigned.append(result.path)

    def finish(self, summary: FsSummary) -> None:
        document = {
            "filesystem": {"signatures": self.entries},
            "directories": self.directories,
            "errors": self.errors,
            "unsigned": sorted(self.unsigned),
            "summary": summary.to_json(),
            "tool": TOOL,
        }
        write_document(self.out, document)


class NDJSONRenderer:
    """One line per signature and per error as found, then the summary: flat memory on any tree.

    `record` tells the lines apart (`type` is the file type, as in the JSON entries)."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def add(self, result: FileResult) -> None:
        lines = [{"record": "signature", **signature_entry(result, s)} for s in result.signatures]
        if result.error:
            lines.append({"record": "error", **_error_entry(result)})
        for line in lines:
            write_line(self.out, line)
        if lines:
            self.out.flush()

    def finish(self, summary: FsSummary) -> None:
        write_line(self.out, {"record": "summary", **summary.to_json()})


CSV_COLUMNS = [
    "path",
    "digest",
    "subjectname",
    "countersigner",
    "type",
    "kind",
    "status",
    "issuer",
    "serial",
    "thumbprint",
    "not_before",
    "not_after",
    "self_signed",
    "expired",
    "eku",
    "digest_algorithm",
    "timestamp_time",
    "chain_status",
    "location",
    "reason",
    "error",
]


class CSVRenderer:
    """One row per signature and one per unreadable file."""

    def __init__(self, out: IO[str]) -> None:
        self.writer = csv_writer(out, CSV_COLUMNS)

    def add(self, result: FileResult) -> None:
        if result.error:
            self.writer.writerow(
                {"path": result.path, "type": result.type, "status": "error", "error": result.error}
            )
        for signature in result.signatures:
            cert = signature.signer
            stamp = signature.timestamp
            self.writer.writerow(
                {
                    "path": result.path,
                    "digest": result.digest or "",
                    "subjectname": subject_name(signature),
                    "countersigner": countersigner(signature),
                    "type": result.type,
                    "kind": signature.kind,
                    "status": str(signature.status),
                    "issuer": cert.issuer if cert else "",
                    **certificate_columns(cert),
                    "digest_algorithm": signature.digest_algorithm,
                    "timestamp_time": stamp.time.isoformat() if stamp is not None and stamp.time else "",
                    "chain_status": signature.chain_status,
                    "location": signature.location,
                    "reason": signature.reason,
                    "error": signature.error or "",
                }
            )

    def finish(self, summary: FsSummary) -> None:
        pass


# Same rule ids as the registry scan, worded for files.
FS_RULE_TEXT = {
    "SIG001": "A signable file (executable, archive, script) carries no signature.",
    "SIG005": "A file or its signature could not be read (permissions, truncated, corrupt).",
}


class SARIFRenderer:
    def __init__(self, out: IO[str], directories: str) -> None:
        self.out = out
        self.directories = directories
        self.results: list[dict[str, Any]] = []

    def _result(self, rule: str, level: str, message: str, result: FileResult) -> None:
        location = {"physicalLocation": {"artifactLocation": {"uri": result.path}}}
        properties = {"digest": result.digest or "", "type": result.type}
        self.results.append(sarif_result(rule, level, message, [location], properties))

    def add(self, result: FileResult) -> None:
        if result.error:
            self._result("SIG005", "error", f"{result.path}: {result.error}", result)
        elif not result.signatures:
            self._result("SIG001", "warning", f"{result.path} ({result.type}) is not signed", result)
        for signature in result.signatures:
            who = subject_name(signature) or "unknown signer"
            for rule, level, message in sarif_signature_problems(
                result.path,
                f"{signature.kind} signature",
                who,
                signature.status,
                signature.reason,
                self_signed=self_signed(signature),
                expired=expired(signature),
            ):
                if rule == "SIG006":
                    # Files say why: which trust store or key the chain did not reach.
                    message += f": {signature.reason}"
                self._result(rule, level, message, result)

    def finish(self, summary: FsSummary) -> None:
        properties = {"directories": self.directories, "summary": summary.to_json()}
        write_document(self.out, sarif_document(self.results, properties, FS_RULE_TEXT))


class HTMLRenderer(_Collector):
    def __init__(self, out: IO[str], directories: str) -> None:
        super().__init__()
        self.out = out
        self.directories = directories

    def finish(self, summary: FsSummary) -> None:
        from sigscope.report.htmlstyle import badge, digest_cell

        e = html.escape
        buf = io.StringIO()
        buf.write(html_head(e(self.directories)))
        buf.write(
            f"<h1>Signed files in {e(self.directories)}</h1><p>{e(summary.line)}</p><div class='cards'>"
        )
        cards = [
            ("files", summary.stats.files),
            ("signed", len(summary.signed_paths)),
            ("signatures", summary.signatures),
            ("signable, unsigned", summary.unsigned),
            ("invalid", summary.statuses.get("invalid", 0)),
            ("errors", summary.errors),
        ]
        buf.write(html_cards(cards, e))
        buf.write(
            "</div><h2>Signatures</h2><table><colgroup><col style='width:20%'><col style='width:7%'>"
            "<col style='width:15%'><col style='width:11%'><col style='width:13%'><col style='width:13%'>"
            "<col style='width:9%'><col style='width:12%'></colgroup><tr><th>Path</th><th>Type</th>"
            "<th>Signer</th><th>Countersigner</th><th>Issuer</th><th>Digest</th><th>Status</th>"
            "<th>Details</th></tr>"
        )
        for result, signature in sorted(self.rows, key=lambda r: r[0].path):
            status = str(signature.status)
            issuer = signature.signer.issuer if signature.signer else ""
            buf.write(
                f"<tr><td>{e(result.path)}</td><td>{e(signature.kind)}</td><td>{e(subject_name(signature))}</td>"
                f"<td>{e(countersigner(signature))}</td><td>{e(issuer)}</td>"
                f"{digest_cell(result.digest or '')}<td>{badge(status)}</td>"
                f"<td>{e(signature.reason)}</td></tr>"
            )
        buf.write("</table>")
        if self.errors:
            buf.write("<h2>Errors</h2><table><tr><th>Path</th><th>Error</th></tr>")
            for result in sorted(self.errors, key=lambda r: r.path):
                buf.write(f"<tr><td>{e(result.path)}</td><td class='error'>{e(result.error or '')}</td></tr>")
            buf.write("</table>")
        buf.write(html_footer(e))
        self.out.write(buf.getvalue())


def make_fs_renderer(
    output: str, out: IO[str], console: Console, directories: str, roots: Sequence[str] = ()
) -> FsRenderer:
    if output in ("pretty", "wide"):
        return TableRenderer(console, directories, wide=output == "wide", roots=roots)
    if output == "json":
        return JSONRenderer(out, directories)
    if output == "ndjson":
        return NDJSONRenderer(out)
    if output == "csv":
        return CSVRenderer(out)
    if output == "sarif":
        return SARIFRenderer(out, directories)
    if output == "html":
        return HTMLRenderer(out, directories)
    raise ValueError(f"unknown output {output!r}")
