"""Scan reports: pretty/wide tables, JSON (sigscan's shape), NDJSON, CSV, SARIF and HTML.

Every renderer takes results one at a time; NDJSON writes each at once (so a crawl of any size
streams in flat memory), the others keep what they must and write at the end.
"""

from __future__ import annotations

import html
import io
from collections.abc import Callable, Iterable
from typing import IO, Any, Protocol

from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from sigscope.model import Status
from sigscope.report.cells import (
    Fit,
    cell,
    cut_middle,
    natural_width,
    print_whole,
    printable,
    short_digest,
    shrink_to_fit,
    status_cell,
)
from sigscope.report.decisions import (
    DECISION_STYLE,
    POLICY_COLUMNS,
    decision_word,
    policy_columns,
    policy_note,
    sarif_policy_problem,
)
from sigscope.report.records import FORMAT_COLUMNS, format_marks, signature_entry, signer_names
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
    write_document,
    write_line,
)
from sigscope.report.summary import Summary, expired, self_signed, worst_status
from sigscope.scan.registry import ImageResult

OUTPUTS = ("pretty", "wide", "json", "ndjson", "csv", "sarif", "html")

STATUS_STYLE = {
    "invalid": "bold red",
    "untrusted": "red",
    "unverified": "yellow",
    "integrity-ok": "cyan",
    "verified": "bold green",
    "unsigned": "dim",
    "error": "bold red",
    "unchecked": "dim",  # --policy decided it by name: its signatures were not looked for
}
# The longest status word (integrity-ok): a status is never cut.
STATUS_WIDTH = max(len(status) for status in STATUS_STYLE)
# How narrow a path and a name may be cut: in the roomy table before the compact one is tried, in the compact.
FLOORS = {False: (40, 24), True: (16, 12)}

Layout = Callable[[bool], tuple[Table, dict[int, tuple[int, int]]]]


def fitted(console: Console, layout: Layout) -> Table:
    """The roomy table (`layout(False)`) as it is when it fits, or with its paths and names cut no shorter
    than `FLOORS[False]`; else the compact one (`layout(True)`), its paths and names sharing what is left."""
    table, flexible = layout(False)
    if natural_width(console, table) <= console.width or shrink_to_fit(console, table, flexible):
        return table
    table, flexible = layout(True)
    shrink_to_fit(console, table, flexible)
    return table


class Renderer(Protocol):
    def add(self, result: ImageResult) -> None: ...

    def finish(self, summary: Summary) -> None: ...


def image_status(result: ImageResult) -> str:
    if result.error:
        return "error"
    if not result.discovered:
        return "unchecked"
    worst = worst_status(result.signatures)
    return str(worst) if worst is not None else "unsigned"


def _flags(result: ImageResult) -> list[str]:
    return [
        flag
        for flag, on in (
            ("self-signed", any(self_signed(s) for s in result.signatures)),
            ("expired", any(expired(s) for s in result.signatures)),
        )
        if on
    ]


def _details(result: ImageResult) -> list[str]:
    details = [result.error] if result.error else []
    details += result.problems
    details += [
        f"{s.format} {s.location}: {s.reason}" for s in result.signatures if s.status is Status.INVALID
    ]
    details += [f"{a.artifact_type} ({'signed' if a.signed else 'unsigned'})" for a in result.attachments]
    if result.decision is not None and result.decision.decision != "allow":
        details.append(result.decision.reason)
    return [d for d in details if d]


def _notes(result: ImageResult) -> list[tuple[str, str]]:
    """What pretty output says beneath the table: (kind, text) for each error and invalid signature."""
    notes = [("error", problem) for problem in ([result.error] if result.error else []) + result.problems]
    notes += [
        ("invalid", f"{s.format} {s.location}: {s.reason}")
        for s in result.signatures
        if s.status is Status.INVALID
    ]
    note = policy_note(result)
    return notes + ([note] if note else [])


def print_note(console: Console, kind: str, path: str, text: str, *, whole: bool = False) -> None:
    """`kind: path: text` on its own lines, wrapped at words; unless `whole`, a path longer than half the line
    loses its middle."""
    shown = printable(path) if whole else cut_middle(printable(path), max(24, console.width // 2))
    console.print(Text.assemble(f"{kind}: ", shown, ": ", printable(text), style="red"))


def print_wide(
    console: Console,
    build: Callable[[bool], Table],
    details: Callable[[], Iterable[tuple[str, str]]],
) -> None:
    """`wide`: every value whole. `build(details)` makes the table with or without its Details column; on a
    terminal too narrow for that column (but wide enough without it), each (path, detail) goes beneath."""
    table = build(True)
    if console.is_terminal and natural_width(console, table) > console.width:
        narrower = build(False)
        if natural_width(console, narrower) <= console.width:
            print_whole(console, narrower)
            for path, detail in details():
                print_note(console, "details", path, detail, whole=True)
            return
    print_whole(console, table)


def print_title(console: Console, title: str, *, whole: bool) -> None:
    """A table's title on its own line: whole for `wide`, else cut in its middle to the console's width."""
    if whole:
        print_whole(console, cell(title, style="table.title"))
    else:
        console.print(Fit(title, style="table.title"))


class TableRenderer:
    """`pretty` fits the console: a digest shortened, a path cut in its middle, one row per line where it can;
    errors and invalid signatures are told beneath the table, wrapped at words. `wide` is for grep and logs:
    every value whole, one row per line, never wrapped (see `print_whole`); on a terminal too narrow for it,
    its Details column moves beneath the table when that is enough to fit."""

    def __init__(self, console: Console, source: str, *, wide: bool, policy: bool = False) -> None:
        self.console = console
        self.source = source
        self.wide = wide
        self.policy = policy  # a Policy column: the decision and its rule
        self.results: list[ImageResult] = []

    def add(self, result: ImageResult) -> None:
        self.results.append(result)

    def _sorted(self) -> list[ImageResult]:
        return sorted(self.results, key=lambda r: (r.repository, r.path, r.platform or ""))

    def _pretty(self, compact: bool) -> tuple[Table, dict[int, tuple[int, int]]]:
        """Roomy: a Digest column, one ✅/❌ column per format, flags beside the status. Compact, for a narrow
        console: the digest beneath the path, the formats present as words, flags beneath the status.
        Returned with its flexible columns, for `shrink_to_fit`."""
        table = Table()
        table.add_column("Path")
        if compact:
            # As narrow as its longest word: the room is better spent on paths and signers.
            table.add_column("Formats", max_width=max(len(c) for c, _ in FORMAT_COLUMNS))
        else:
            table.add_column("Digest", no_wrap=True)
            for column, _ in FORMAT_COLUMNS:
                table.add_column(column.capitalize(), justify="center", no_wrap=True)
        table.add_column("Signer")
        table.add_column("Status", no_wrap=True, min_width=STATUS_WIDTH)
        if self.policy:
            table.add_column("Policy")
        for result in self._sorted():
            marks = format_marks(result)
            name = Fit(result.path if not result.parent else f"  └ {result.platform or result.digest}")
            digest = cell(short_digest(result.digest), style="dim" if compact else "")
            cells: list[RenderableType]
            if compact:
                formats = " ".join(column for column, _ in FORMAT_COLUMNS if marks[column])
                cells = [Group(name, digest) if result.digest else name, Text(formats)]
            else:
                cells = [name, digest, *("✅" if marks[column] else "❌" for column, _ in FORMAT_COLUMNS)]
            cells.append(Fit(", ".join(signer_names(result)), where="end"))
            status = image_status(result)
            cells.append(status_cell(status, STATUS_STYLE.get(status, ""), _flags(result), stacked=compact))
            if self.policy:
                cells.append(_policy_cell(result))
            table.add_row(*cells)
        path_floor, name_floor = FLOORS[compact]
        signer = len(table.columns) - (3 if self.policy else 2)
        return table, {0: (3, path_floor), signer: (2, name_floor)}

    def _wide(self, *, details: bool) -> Table:
        table = Table()
        centered = {c.capitalize() for c, _ in FORMAT_COLUMNS}
        for name in ("Path", "Digest", *(c.capitalize() for c, _ in FORMAT_COLUMNS), "Signer", "Issuer"):
            table.add_column(name, no_wrap=True, justify="center" if name in centered else "left")
        table.add_column("Platform", no_wrap=True)
        table.add_column("Status", no_wrap=True)
        if self.policy:
            table.add_column("Policy", no_wrap=True)
        if details:
            table.add_column("Details", no_wrap=True)
        for result in self._sorted():
            marks = format_marks(result)
            issuers = sorted(
                {s.signer.issuer_name for s in result.signatures if s.signer and s.signer.issuer_name}
            )
            status = image_status(result)
            cells = [
                cell(result.path if not result.parent else f"  └ {result.platform or result.digest}"),
                cell(result.digest),
                *(Text("✅" if marks[column] else "❌") for column, _ in FORMAT_COLUMNS),
                cell("; ".join(signer_names(result))),
                cell("; ".join(issuers)),
                cell(result.platform or ""),
                status_cell(status, STATUS_STYLE.get(status, ""), _flags(result), stacked=False),
            ]
            if self.policy:
                cells.append(_policy_cell(result))
            if details:
                cells.append(cell("; ".join(_details(result))))
            table.add_row(*cells)
        return table

    def finish(self, summary: Summary) -> None:
        console = self.console
        print_title(console, self.source, whole=self.wide)
        if self.wide:
            print_wide(
                console,
                lambda details: self._wide(details=details),
                lambda: ((r.path, detail) for r in self._sorted() for detail in _details(r)),
            )
        else:
            console.print(fitted(console, self._pretty))
            for result in self.results:
                for kind, text in _notes(result):
                    print_note(console, kind, result.path, text)
        console.print(cell(summary.line))


def _policy_cell(result: ImageResult) -> Text:
    decision = result.decision
    return cell(decision_word(result), style=DECISION_STYLE.get(decision.decision, "") if decision else "")


class JSONRenderer:
    """`{"name", "registry": {"signatures": [...]}}` as sigscan writes it, plus images and a summary."""

    def __init__(self, out: IO[str], source: str, key: str = "registry") -> None:
        self.out = out
        self.source = source
        self.key = key
        self.entries: list[dict[str, Any]] = []
        self.images: list[dict[str, Any]] = []

    def add(self, result: ImageResult) -> None:
        self.images.append(result.to_json())
        self.entries.extend(signature_entry(result, s) for s in result.signatures)

    def finish(self, summary: Summary) -> None:
        document = {
            "name": self.source,
            self.key: {"signatures": self.entries},
            "images": self.images,
            "summary": summary.to_json(),
            "tool": TOOL,
        }
        write_document(self.out, document)


class NDJSONRenderer:
    """One self-contained line per image, as it completes; a summary line last."""

    def __init__(self, out: IO[str]) -> None:
        self.out = out

    def add(self, result: ImageResult) -> None:
        line = {
            "type": "image",
            **result.to_json(),
            "signatures": [signature_entry(result, s) for s in result.signatures],
        }
        write_line(self.out, line)
        self.out.flush()

    def finish(self, summary: Summary) -> None:
        write_line(self.out, {"type": "summary", **summary.to_json()})


CSV_COLUMNS = [
    "path",
    "repository",
    "tags",
    "digest",
    "platform",
    "format",
    "status",
    "subjectname",
    "issuer",
    "emails",
    "uris",
    "oidc_issuer",
    "thumbprint",
    "not_after",
    "self_signed",
    "expired",
    "timestamped",
    "signing_time",
    "location",
    "reason",
    "error",
]


class CSVRenderer:
    """One row per signature, and one per unsigned or unreadable image, so nothing is silently absent."""

    def __init__(self, out: IO[str], *, policy: bool = False) -> None:
        self.policy = policy  # the policy columns appended; without --policy the header is as it always was
        self.writer = csv_writer(out, CSV_COLUMNS + (POLICY_COLUMNS if policy else []))

    def add(self, result: ImageResult) -> None:
        base = {
            **(policy_columns(result) if self.policy else {}),
            "path": result.path,
            "repository": result.repository,
            "tags": " ".join(result.tags),
            "digest": result.digest,
            "platform": result.platform or "",
            "error": "; ".join(([result.error] if result.error else []) + result.problems),
        }
        if not result.signatures:
            self.writer.writerow({**base, "status": "error" if result.error else image_status(result)})
            return
        for signature in result.signatures:
            cert = signature.signer.certificate if signature.signer else None
            self.writer.writerow(
                {
                    **base,
                    "format": str(signature.format),
                    "status": str(signature.status),
                    "subjectname": signature.signer.display_name if signature.signer else "",
                    "issuer": signature.signer.issuer_name if signature.signer else "",
                    **certificate_columns(cert),
                    "timestamped": str(signature.timestamped).lower(),
                    "signing_time": signature.signing_time.isoformat() if signature.signing_time else "",
                    "location": signature.location,
                    "reason": signature.reason,
                    "error": signature.error or result.error or "",
                }
            )

    def finish(self, summary: Summary) -> None:
        pass


class SARIFRenderer:
    """SARIF 2.1.0: unsigned, invalid, self-signed, expired, unreadable and untrusted images as results."""

    def __init__(self, out: IO[str], source: str) -> None:
        self.out = out
        self.source = source
        self.results: list[dict[str, Any]] = []

    def _result(self, rule: str, level: str, message: str, image: ImageResult) -> None:
        location = {
            "logicalLocations": [{"fullyQualifiedName": f"{self.source}/{image.path}", "kind": "resource"}],
            "physicalLocation": {"artifactLocation": {"uri": f"oci://{self.source}/{image.path}"}},
        }
        properties = {"digest": image.digest, "repository": image.repository, "tags": image.tags}
        self.results.append(sarif_result(rule, level, message, [location], properties))

    def add(self, result: ImageResult) -> None:
        decided = sarif_policy_problem(result)
        if decided is not None:
            self._result(*decided, result)
        if result.error:
            self._result("SIG005", "error", f"{result.path}: {result.error}", result)
            return
        for problem in result.problems:
            self._result("SIG005", "error", f"{result.path}: {problem}", result)
        if not result.signatures and result.discovered:
            self._result("SIG001", "warning", f"{result.path} ({result.digest}) is not signed", result)
        for signature in result.signatures:
            who = signature.signer.display_name if signature.signer else "unknown signer"
            for rule, level, message in sarif_signature_problems(
                result.path,
                f"{signature.format} signature",
                who,
                signature.status,
                signature.reason,
                self_signed=self_signed(signature),
                expired=expired(signature),
            ):
                self._result(rule, level, message, result)

    def finish(self, summary: Summary) -> None:
        write_document(self.out, sarif_document(self.results, {"summary": summary.to_json()}))


class HTMLRenderer:
    """One self-contained page: counts, signed vs unsigned per repository, and the table."""

    def __init__(self, out: IO[str], source: str, *, policy: bool = False) -> None:
        self.out = out
        self.source = source
        self.policy = policy
        self.results: list[ImageResult] = []

    def add(self, result: ImageResult) -> None:
        self.results.append(result)

    def finish(self, summary: Summary) -> None:
        from sigscope.report.htmlstyle import badge, digest_cell, format_tags, share_bar

        e = html.escape
        buf = io.StringIO()
        buf.write(html_head(e(self.source)))
        buf.write(f"<h1>Signatures in {e(self.source)}</h1><p>{e(summary.line)}</p><div class='cards'>")
        cards = [
            ("images", summary.images),
            ("signed", summary.signed_images),
            ("unsigned", sum(c.unsigned for c in summary.repositories.values())),
            ("signatures", summary.signatures),
            ("invalid", summary.statuses.get("invalid", 0)),
            ("errors", summary.errors),
        ]
        if self.policy:
            cards += [("denied by policy", summary.decisions["deny"]), ("warned", summary.decisions["warn"])]
        buf.write(html_cards(cards, e))
        buf.write(
            "</div><section><h2>Signed vs unsigned by repository</h2><table><colgroup>"
            "<col style='width:40%'><col style='width:10%'><col style='width:10%'><col style='width:10%'>"
            "<col style='width:30%'></colgroup><tr><th>Repository</th><th class='num'>Signed</th>"
            "<th class='num'>Unsigned</th><th class='num'>Errors</th><th>Share</th></tr>"
        )
        for repo, counts in sorted(summary.repositories.items()):
            buf.write(
                f"<tr><td>{e(repo)}</td><td class='num'>{counts.signed}</td><td class='num'>{counts.unsigned}"
                f"</td><td class='num'>{counts.errors}</td>"
                f"<td>{share_bar(counts.signed, counts.unsigned, counts.errors)}</td></tr>"
            )
        policy_col = "<col style='width:10%'>" if self.policy else ""
        buf.write(
            "</table></section><section><h2>Images</h2><table><colgroup><col style='width:22%'>"
            "<col style='width:14%'><col style='width:13%'><col style='width:16%'><col style='width:9%'>"
            f"{policy_col}<col></colgroup><tr><th>Path</th><th>Digest</th><th>Formats</th>"
            "<th>Signer</th><th>Status</th>"
            + ("<th>Policy</th>" if self.policy else "")
            + "<th>Details</th></tr>"
        )
        for result in sorted(self.results, key=lambda r: (r.repository, r.path)):
            marks = format_marks(result)
            details = [result.error] if result.error else []
            details += result.problems
            details += [f"{s.format}: {s.reason}" for s in result.signatures if s.status is Status.INVALID]
            if result.decision is not None:
                details.append(result.decision.reason)
            signers = "<br>".join(e(n) for n in signer_names(result))
            notes = "<br>".join(e(d) for d in details if d)
            buf.write(
                f"<tr><td>{e(result.path)}</td>{digest_cell(result.digest)}"
                f"<td>{format_tags([c for c, _ in FORMAT_COLUMNS if marks[c]])}</td>"
                f"<td>{signers}</td><td>{badge(image_status(result))}</td>"
            )
            if self.policy:
                verdict = result.decision.decision if result.decision else ""
                buf.write(f"<td>{badge(decision_word(result), verdict or None)}</td>")
            buf.write(f"<td>{notes}</td></tr>")
        buf.write("</table></section>" + html_footer(e))
        self.out.write(buf.getvalue())


def make_renderer(
    output: str, out: IO[str], console: Console, source: str, key: str = "registry", *, policy: bool = False
) -> Renderer:
    """`policy`: the scan decides each image by a --policy; the formats with columns gain one."""
    if output in ("pretty", "wide"):
        return TableRenderer(console, source, wide=output == "wide", policy=policy)
    if output == "json":
        return JSONRenderer(out, source, key)
    if output == "ndjson":
        return NDJSONRenderer(out)
    if output == "csv":
        return CSVRenderer(out, policy=policy)
    if output == "sarif":
        return SARIFRenderer(out, source)
    if output == "html":
        return HTMLRenderer(out, source, policy=policy)
    raise ValueError(f"unknown output {output!r}")
