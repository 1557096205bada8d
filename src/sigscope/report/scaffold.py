"""What the registry scan's and `scan fs`'s reports share: the SARIF document, the HTML page frame and cards,
the JSON writers and the `--fail-on` conditions a signature meets."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Mapping
from typing import IO, Any, Protocol, TypeVar

from sigscope import __version__
from sigscope.model import CertificateInfo, Status

TOOL = {"name": "sigscope", "version": __version__}

SARIF_RULES = [
    ("SIG001", "unsigned-image", "The image carries no signature in any format.", "warning"),
    (
        "SIG002",
        "invalid-signature",
        "A signature failed an integrity check (tampered, wrong digest, broken chain).",
        "error",
    ),
    ("SIG003", "self-signed-signer", "A signature's certificate is self-signed.", "warning"),
    (
        "SIG004",
        "expired-certificate",
        "A signing certificate has expired and no timestamp vouches for it.",
        "warning",
    ),
    ("SIG005", "unreadable-image", "The image or its signatures could not be read.", "error"),
    ("SIG006", "untrusted-signature", "A signature is not trusted by the supplied trust material.", "error"),
    ("SIG007", "policy-denied", "The --policy denies the image: admission would reject it.", "error"),
    (
        "SIG008",
        "policy-warning",
        "The --policy admits the image with a warning (a rule in warn mode).",
        "warning",
    ),
]


class HasStatus(Protocol):
    @property
    def status(self) -> Status: ...


S = TypeVar("S", bound=HasStatus)


def signature_findings(
    signatures: Iterable[S], self_signed: Callable[[S], bool], expired: Callable[[S], bool]
) -> set[str]:
    """The `--fail-on` conditions the signatures meet ("invalid", "untrusted", "self-signed", "expired")."""
    found: set[str] = set()
    for signature in signatures:
        if signature.status is Status.INVALID:
            found.add("invalid")
        if signature.status is Status.UNTRUSTED:
            found.add("untrusted")
        if self_signed(signature):
            found.add("self-signed")
        if expired(signature):
            found.add("expired")
    return found


def write_document(out: IO[str], document: dict[str, Any]) -> None:
    out.write(json.dumps(document, indent=2) + "\n")


def write_line(out: IO[str], line: dict[str, Any]) -> None:
    out.write(json.dumps(line, separators=(",", ":")) + "\n")


# A cell a spreadsheet would read as a formula ("=HYPERLINK(...)", "+cmd|...", "@SUM(...)", or one hidden
# behind a leading tab or CR). OWASP's advice: prefix a single quote, which spreadsheets show as text.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(value: Any) -> Any:
    """`value`, with a leading single quote when a spreadsheet would take it for a formula."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


class CSVWriter:
    """csv.DictWriter whose cells are spreadsheet-safe: names, signers and messages come from outside, and
    CSV is what gets opened in a spreadsheet. JSON and the other formats keep the exact text."""

    def __init__(self, out: IO[str], columns: list[str]) -> None:
        # Keys outside `columns` are dropped, so rows may carry more.
        self._writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")

    def writeheader(self) -> None:
        self._writer.writeheader()

    def writerow(self, row: Mapping[str, Any]) -> None:
        self._writer.writerow({key: spreadsheet_safe(value) for key, value in row.items()})


def csv_writer(out: IO[str], columns: list[str]) -> CSVWriter:
    """A spreadsheet-safe CSV writer with its header written."""
    writer = CSVWriter(out, columns)
    writer.writeheader()
    return writer


CERTIFICATE_COLUMNS = (
    "serial",
    "thumbprint",
    "not_before",
    "not_after",
    "self_signed",
    "expired",
    "eku",
    "emails",
    "uris",
    "oidc_issuer",
)


def certificate_columns(cert: CertificateInfo | None) -> dict[str, str]:
    """The signing certificate's CSV cells (empty without one); each report keeps the columns it lists."""
    if cert is None:
        return dict.fromkeys(CERTIFICATE_COLUMNS, "")
    return {
        "serial": cert.serial,
        "thumbprint": cert.sha256,
        "not_before": cert.not_before.isoformat(),
        "not_after": cert.not_after.isoformat(),
        "self_signed": str(cert.self_signed).lower(),
        "expired": str(cert.expired).lower(),
        "eku": " ".join(cert.eku),
        "emails": " ".join(cert.emails),
        "uris": " ".join(cert.uris),
        "oidc_issuer": cert.oidc_issuer or "",
    }


def sarif_result(
    rule: str, level: str, message: str, locations: list[dict[str, Any]], properties: dict[str, Any]
) -> dict[str, Any]:
    return {
        "ruleId": rule,
        "level": level,
        "message": {"text": message},
        "locations": locations,
        "properties": properties,
    }


def sarif_document(
    results: list[dict[str, Any]], properties: dict[str, Any], rule_text: dict[str, str] | None = None
) -> dict[str, Any]:
    """SARIF 2.1.0 with one run; `rule_text` rewords rules' short descriptions (files, not images)."""
    rule_text = rule_text or {}
    return {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        **TOOL,
                        "rules": [
                            {
                                "id": rule_id,
                                "name": name,
                                "shortDescription": {"text": rule_text.get(rule_id, text)},
                                "defaultConfiguration": {"level": level},
                            }
                            for rule_id, name, text, level in SARIF_RULES
                        ],
                    }
                },
                "results": results,
                "properties": properties,
            }
        ],
    }


FAILED_CSS = ".invalid,.error,.untrusted{color:#a3121f;font-weight:bold}"
PASSED_CSS = ".integrity-ok{color:#1f6f8b}.verified{color:#1e7f4f;font-weight:bold}.unverified{color:#a86b00}"


def html_head(title: str, layout_css: str = "", status_css: str = "") -> str:
    """The page up to the start of its content, in the look `report serve` has (report/htmlstyle.py), the
    stylesheet inline so that the file stands alone; `title` is escaped already. `layout_css` follows the
    shared rules, `status_css` the failed-status colours."""
    from sigscope.report.htmlstyle import STYLE

    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>sigscope report: {title}</title><style>"
        f"{STYLE}{layout_css}{FAILED_CSS}{status_css}{PASSED_CSS}</style></head><body><main>"
    )


def html_cards(cards: list[tuple[str, int]], escape: Callable[[str], str]) -> str:
    return "".join(f"<div class='card'><b>{value}</b>{escape(label)}</div>" for label, value in cards)


def html_footer(escape: Callable[[str], str]) -> str:
    return f"<p class='muted'><small>sigscope {escape(__version__)}</small></p></main></body></html>\n"


def sarif_signature_problems(
    path: str, what: str, who: str, status: Status, reason: str, *, self_signed: bool, expired: bool
) -> list[tuple[str, str, str]]:
    """(rule, level, message) for each problem of one signature; `what` names it ("cosign signature"),
    `who` its signer."""
    problems = []
    if status is Status.INVALID:
        problems.append(("SIG002", "error", f"{path}: {what} invalid: {reason}"))
    if status is Status.UNTRUSTED:
        problems.append(("SIG006", "error", f"{path}: {what} by {who} is not trusted"))
    if self_signed:
        problems.append(("SIG003", "warning", f"{path}: signed by self-signed certificate {who}"))
    if expired:
        problems.append(("SIG004", "warning", f"{path}: certificate of {who} has expired"))
    return problems
