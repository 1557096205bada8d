"""The web report's pages as HTML strings. Every name, tag, signer, subject and reason comes from a registry
or a certificate someone else made: each goes through `html.escape` (quotes too, for attributes), links
are built from our own ids and urlencoded parameters, and the pages carry no script."""

from __future__ import annotations

from datetime import datetime
from html import escape
from typing import Any
from urllib.parse import urlencode

from sigscope import __version__
from sigscope.report.history import CHANGE_KINDS, Change
from sigscope.report.htmlstyle import STATUS_WORDS, badge, cards, digest_cell, format_tags, share_bar
from sigscope.report.svg import legend, line_chart, sparkline
from sigscope.report.web_model import Model, TableQuery, select
from sigscope.store.queries import Evidence

MAX_SECTION_ROWS = 200
MAX_CHART_LINES = 8


def page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{escape(title)}</title><link rel='stylesheet' href='/style.css'></head><body>"
        "<header class='top'><b>sigscope inventory</b><a href='/'>Overview</a><a href='/#images'>Images</a>"
        "<a href='/#signers'>Signers</a><a href='/#expiring'>Expiring</a><a href='/#changes'>Changes</a>"
        f"</header><main>{body}<p class='muted'><small>sigscope {escape(__version__)}, read-only"
        "</small></p></main></body></html>"
    )


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M} UTC" if value is not None else ""


def _link(image_id: int | None, text: str) -> str:
    if image_id is None:
        return escape(text)
    return f"<a href='/image/{int(image_id)}'>{escape(text)}</a>"


def _more(shown: int, total: int) -> str:
    return f"<p class='muted'>Showing {shown} of {total}.</p>" if total > shown else ""


def _charts(model: Model) -> str:
    registries = sorted(model.series.registries.items(), key=lambda kv: -kv[1][-1][2])[:MAX_CHART_LINES]
    if not registries:
        return "<p class='muted'>No complete scan yet.</p>"
    lines = [(name, [(t, s / n) for t, s, n in points]) for name, points in registries]
    return line_chart(lines) + legend([name for name, _ in lines])


def _repositories(model: Model) -> str:
    counts: dict[tuple[str, str], list[int]] = {}
    for row in model.rows:
        image = row.image
        entry = counts.setdefault((image.source, image.repository), [0, 0, 0])
        entry[2 if image.error else (0 if image.signed else 1)] += 1
    keys = sorted(counts)
    out = [
        "<table id='repositories'><colgroup><col style='width:22%'><col style='width:34%'>"
        "<col style='width:8%'><col style='width:8%'><col style='width:14%'><col style='width:14%'>"
        "</colgroup>"
        "<tr><th>Registry</th><th>Repository</th><th class='num'>Images</th><th class='num'>Signed</th>"
        "<th>Share</th><th>Over time</th></tr>"
    ]
    for key in keys[:MAX_SECTION_ROWS]:
        signed, unsigned, errors = counts[key]
        series = [(t, s / n) for t, s, n in model.series.repositories.get(key, []) if n]
        out.append(
            f"<tr><td>{escape(key[0])}</td><td>{escape(key[1] or '(root)')}</td>"
            f"<td class='num'>{signed + unsigned + errors}</td><td class='num'>{signed}</td>"
            f"<td>{share_bar(signed, unsigned, errors)}</td><td>{sparkline(series)}</td></tr>"
        )
    out.append("</table>" + _more(min(len(keys), MAX_SECTION_ROWS), len(keys)))
    return "".join(out)


def changes_table(changes: list[Change], limit: int = MAX_SECTION_ROWS) -> str:
    if not changes:
        return "<p class='muted'>No changes.</p>"
    out = [
        "<table id='changes-table'><colgroup><col style='width:13%'><col style='width:33%'>"
        "<col style='width:17%'><col style='width:17%'><col style='width:20%'></colgroup>"
        "<tr><th>Change</th><th>Image</th><th>Before</th><th>After</th><th>Digest</th></tr>"
    ]
    bad = {"newly-unsigned", "turned-invalid", "turned-untrusted"}
    for change in changes[:limit]:
        kind = "invalid" if change.kind in bad else ("verified" if change.kind == "newly-signed" else None)
        out.append(
            f"<tr><td>{badge(change.kind, kind)}</td><td>{_link(change.image_id, change.name)}</td>"
            f"<td>{escape(change.before)}</td><td>{escape(change.after)}</td>"
            f"{digest_cell(change.after_digest or change.before_digest)}</tr>"
        )
    out.append("</table>" + _more(min(len(changes), limit), len(changes)))
    return "".join(out)


def _sort_link(query: TableQuery, column: str, label: str) -> str:
    desc = not query.desc if query.sort == column else False
    arrow = (" (desc)" if query.desc else " (asc)") if query.sort == column else ""
    href = "/?" + urlencode(query.params(sort=column, dir="desc" if desc else "asc", page=1)) + "#images"
    return f"<a href='{escape(href)}'>{escape(label)}</a>{arrow}"


def _options(values: list[str], chosen: str, empty: str) -> str:
    out = [f"<option value=''>{escape(empty)}</option>"]
    for value in values:
        selected = " selected" if value == chosen else ""
        out.append(f"<option value='{escape(value)}'{selected}>{escape(value)}</option>")
    return "".join(out)


def images_section(model: Model, query: TableQuery) -> str:
    rows, matched, pages = select(model.rows, query)
    page_no = min(query.page, pages)
    out = [
        "<form class='filter' method='get' action='/#images'>"
        f"<label>Search<input type='search' name='q' value='{escape(query.q)}' "
        "placeholder='name, digest, signer'>"
        "</label>"
        f"<label>Status<select name='status'>{_options(list(STATUS_WORDS), query.status, 'any')}</select>"
        "</label>"
        f"<label>Registry<select name='registry'>{_options(model.sources, query.registry, 'any')}</select>"
        "</label>"
        f"<input type='hidden' name='sort' value='{escape(query.sort)}'>"
        f"<input type='hidden' name='dir' value='{'desc' if query.desc else 'asc'}'>"
        "<button type='submit'>Filter</button></form>",
        "<table id='images-table'><colgroup><col style='width:27%'><col style='width:13%'>"
        "<col style='width:15%'><col style='width:11%'><col style='width:16%'><col style='width:8%'>"
        "<col style='width:10%'></colgroup><tr>"
        f"<th>{_sort_link(query, 'path', 'Image')}</th><th>{_sort_link(query, 'registry', 'Registry')}</th>"
        "<th>Digest</th><th>Formats</th>"
        f"<th>{_sort_link(query, 'signers', 'Signers')}</th><th>{_sort_link(query, 'status', 'Status')}</th>"
        f"<th>{_sort_link(query, 'scanned', 'Scanned')}</th></tr>",
    ]
    for row in rows:
        image = row.image
        name = image.path if not image.parent_digest else f"{image.path} ({image.platform or 'platform'})"
        signers = "<br>".join(escape(s) for s in row.signers) or "<span class='muted'>none</span>"
        out.append(
            f"<tr><td>{_link(image.id, name)}</td><td>{escape(image.source)}</td>{digest_cell(image.digest)}"
            f"<td>{format_tags(list(row.formats))}</td><td>{signers}</td><td>{badge(image.status)}</td>"
            f"<td>{escape(_when(row.scanned))}</td></tr>"
        )
    if not rows:
        out.append("<tr><td colspan='7' class='muted'>No image matches.</td></tr>")
    out.append("</table><div class='pager'>")
    if page_no > 1:
        href = "/?" + urlencode(query.params(page=page_no - 1)) + "#images"
        out.append(f"<a rel='prev' href='{escape(href)}'>Previous</a>")
    out.append(f"<span>Page {page_no} of {pages} ({matched} images)</span>")
    if page_no < pages:
        href = "/?" + urlencode(query.params(page=page_no + 1)) + "#images"
        out.append(f"<a rel='next' href='{escape(href)}'>Next</a>")
    out.append("</div>")
    return "".join(out)


def _signers(model: Model) -> str:
    if not model.identities:
        return "<p class='muted'>No signer identities.</p>"
    out = [
        "<table id='signers-table'><colgroup><col style='width:30%'><col style='width:22%'>"
        "<col style='width:14%'><col style='width:14%'><col style='width:20%'></colgroup>"
        "<tr><th>Identity</th><th>Issuer</th><th>Formats</th><th>Statuses</th><th>Images</th></tr>"
    ]
    for identity in model.identities[:MAX_SECTION_ROWS]:
        images = ", ".join(_link(i.id, i.path) for i in identity.images[:5])
        more = f" and {len(identity.images) - 5} more" if len(identity.images) > 5 else ""
        out.append(
            f"<tr><td>{escape(identity.identity)}</td><td>{escape(identity.issuer or '')}</td>"
            f"<td>{format_tags(list(identity.formats))}</td>"
            f"<td>{''.join(badge(s) for s in identity.statuses)}</td><td>{images}{more}</td></tr>"
        )
    out.append("</table>" + _more(min(len(model.identities), MAX_SECTION_ROWS), len(model.identities)))
    return "".join(out)


def _expiring(model: Model) -> str:
    if not model.expiring:
        return "<p class='muted'>No certificate expires within 30 days.</p>"
    out = [
        "<table id='expiring-table'><colgroup><col style='width:15%'><col style='width:12%'>"
        "<col style='width:10%'><col style='width:35%'><col style='width:28%'></colgroup>"
        "<tr><th>Not after</th><th>When</th><th>Role</th><th>Subject</th><th>Images</th></tr>"
    ]
    for row in model.expiring[:MAX_SECTION_ROWS]:
        days = row.days_left(model.now)
        when = badge("expired", "expired") if row.expired else badge(f"in {days} days", "soon")
        images = ", ".join(_link(i.id, i.path) for i in list(row.images.values())[:5])
        out.append(
            f"<tr><td>{escape(_when(row.not_after))}</td><td>{when}</td><td>{escape(row.role)}</td>"
            f"<td>{escape(row.subject)}</td><td>{images}</td></tr>"
        )
    out.append("</table>" + _more(min(len(model.expiring), MAX_SECTION_ROWS), len(model.expiring)))
    return "".join(out)


def dashboard(model: Model, query: TableQuery) -> str:
    images = [r.image for r in model.rows]
    signed = sum(1 for i in images if i.signed and not i.error)
    errors = sum(1 for i in images if i.error)
    counts = {k: 0 for k in CHANGE_KINDS}
    for change in model.changes:
        counts[change.kind] += 1
    since = "the first scan" if model.since is None else f"run {model.since}"
    body = [
        "<h1>Who signed what</h1>",
        cards(
            [
                ("images", len(images)),
                ("signed", signed),
                ("unsigned", len(images) - signed - errors),
                ("errors", errors),
                ("signer identities", len(model.identities)),
                ("expiring in 30 days", len(model.expiring)),
            ]
        ),
        f"<section id='share'><h2>Signed share by registry</h2>{_charts(model)}</section>",
        f"<section id='repos'><h2>Repositories</h2>{_repositories(model)}</section>",
        f"<section id='changes'><h2>Latest changes (since {escape(since)})</h2>"
        f"<p>{escape(', '.join(f'{n} {k}' for k, n in counts.items() if n) or 'nothing changed')}</p>"
        f"{changes_table(model.changes)}</section>",
        f"<section id='images'><h2>Images</h2>{images_section(model, query)}</section>",
        f"<section id='signers'><h2>Signer identities</h2>{_signers(model)}</section>",
        f"<section id='expiring'><h2>Certificates expiring within 30 days</h2>{_expiring(model)}</section>",
    ]
    return page("sigscope inventory", "".join(body))


def _facts(rows: list[tuple[str, str]]) -> str:
    return "<dl class='facts'>" + "".join(f"<dt>{escape(k)}</dt><dd>{v}</dd>" for k, v in rows) + "</dl>"


def _checks(checks: list[dict[str, Any]]) -> str:
    if not checks:
        return "<p class='muted'>No checks recorded.</p>"
    out = [
        "<table class='checks'><colgroup><col style='width:25%'><col style='width:12%'><col></colgroup>"
        "<tr><th>Check</th><th>Outcome</th><th>Detail</th></tr>"
    ]
    for check in checks[:200]:
        outcome = str(check.get("outcome", ""))
        kind = {"pass": "verified", "fail": "invalid"}.get(outcome)
        out.append(
            f"<tr><td>{escape(str(check.get('name', '')))}</td><td>{badge(outcome, kind)}</td>"
            f"<td>{escape(str(check.get('detail', '')))}</td></tr>"
        )
    return "".join(out) + "</table>"


def evidence_page(found: Evidence, now: datetime) -> str:
    image, run = found.image, found.run
    title = f"{image.source}/{image.path}" if image.kind == "image" else image.path
    facts = [
        ("Source", escape(image.source)),
        ("Image" if image.kind == "image" else "File", escape(image.path)),
        ("Digest", f"<code>{escape(image.digest)}</code>"),
        ("Tags", escape(", ".join(image.tags))),
        ("Media type", escape(image.media_type)),
        ("Status", badge(image.status)),
        (
            "Seen by",
            f"run {run.id} ({escape(run.kind)} {escape(run.target)}), {escape(_when(run.started_at))}",
        ),
    ]
    if image.platform:
        facts.append(("Platform", escape(image.platform)))
    if image.parent_digest:
        facts.append(("Index", f"<code>{escape(image.parent_digest)}</code>"))
    if image.reused:
        facts.append(("Evidence", f"reused from an earlier run (row {int(image.signatures_from)})"))
    if image.error:
        facts.append(("Error", f"<span class='bad'>{escape(image.error)}</span>"))
    for problem in image.problems:
        facts.append(("Problem", escape(problem)))
    if image.decision is not None and image.decision.decision:
        decision = image.decision
        facts.append(
            (
                "Decision",
                f"{badge(decision.decision or '')} {escape(decision.rule or '')} "
                f"{escape(decision.reason or '')}",
            )
        )
    body = [f"<h1>{escape(title)}</h1><section>{_facts(facts)}</section>"]
    if not found.signatures:
        body.append("<section><p class='muted'>No signatures.</p></section>")
    for number, sig in enumerate(found.signatures, 1):
        row = sig.row
        target = f" on attachment {row.attachment_digest}" if row.attachment_digest else ""
        sig_facts = [
            ("Status", badge(row.status)),
            ("Signer", escape(row.signer)),
            ("Identity", escape(row.identity or "")),
            ("Issuer", escape(row.issuer or "")),
            ("Location", f"<code>{escape(row.location)}</code>"),
            ("Signing time", escape(_when(row.signing_time))),
            ("Timestamped", "yes" if row.timestamped else "no"),
        ]
        if row.reason:
            sig_facts.append(("Reason", escape(row.reason)))
        if row.error:
            sig_facts.append(("Error", f"<span class='bad'>{escape(row.error)}</span>"))
        chain = [
            "<table class='chain'><colgroup><col style='width:10%'><col style='width:30%'>"
            "<col style='width:26%'><col style='width:14%'><col style='width:20%'></colgroup>"
            "<tr><th>Role</th><th>Subject</th><th>Issuer</th><th>Serial</th><th>Valid</th></tr>"
        ]
        for cert in row.certificates:
            flag = f" {badge('expired', 'expired')}" if cert.not_after <= now else ""
            chain.append(
                f"<tr><td>{escape(cert.role)}</td><td>{escape(cert.subject)}</td><td>{escape(cert.issuer)}</td>"
                f"<td class='mono'>{escape(cert.serial)}</td>"
                f"<td>{escape(_when(cert.not_before))} to {escape(_when(cert.not_after))}{flag}</td></tr>"
            )
        chain.append("</table>")
        body.append(
            f"<section class='signature'><h2>Signature {number}: {escape(row.format)}{escape(target)}</h2>"
            f"{_facts(sig_facts)}<h3>Checks</h3>{_checks(row.checks)}<h3>Certificate chain</h3>"
            + ("".join(chain) if row.certificates else "<p class='muted'>No certificates.</p>")
            + "</section>"
        )
    return page(f"sigscope: {title}", "".join(body))


def not_found(what: str) -> str:
    return page("not found", f"<h1>Not found</h1><p>{escape(what)}</p><p><a href='/'>Overview</a></p>")
