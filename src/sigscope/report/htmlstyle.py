"""The look `-o html` and `report serve` share: one stylesheet, status badges and format tags drawn with CSS
(words on coloured shapes, never font glyphs that some fonts lack), and a table that fits its page: fixed
layout, long names broken anywhere, digests cut with an ellipsis (the whole one in the title)."""

from __future__ import annotations

from html import escape

STYLE = (
    "*{box-sizing:border-box}"
    "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;margin:0;"
    "color:#1d2430;"
    "background:#f6f7f9;font-size:14px;line-height:1.4}"
    "main{max-width:1360px;margin:0 auto;padding:16px 20px 40px}"
    "header.top{background:#1d2430;color:#fff;padding:10px 20px}"
    "header.top a{color:#cfe3ff;margin-right:16px;text-decoration:none}"
    "header.top b{margin-right:24px}"
    "h1{font-size:22px;margin:8px 0}h2{font-size:17px;margin:24px 0 8px}"
    "section{background:#fff;border:1px solid #e1e4e8;border-radius:8px;padding:12px 16px;margin:12px 0;"
    "overflow:hidden}"
    "table{border-collapse:collapse;width:100%;table-layout:fixed;font-size:13px}"
    "td,th{border-bottom:1px solid #e6e8eb;padding:5px 6px;vertical-align:top;text-align:left;"
    "overflow-wrap:anywhere;word-break:break-word}"
    "th{background:#f0f2f5;font-weight:600}th a{color:inherit}"
    "td.num,th.num{text-align:right}"
    ".digest{font-family:ui-monospace,'DejaVu Sans Mono',monospace;font-size:12px;white-space:nowrap;"
    "overflow:hidden;text-overflow:ellipsis}"
    "code,.mono{font-family:ui-monospace,'DejaVu Sans Mono',monospace;font-size:12px}"
    ".cards{display:flex;flex-wrap:wrap;gap:12px;margin:12px 0}"
    ".card{background:#fff;border:1px solid #e1e4e8;border-radius:8px;padding:8px 14px;min-width:110px}"
    ".card b{display:block;font-size:22px}"
    ".badge{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600;"
    "white-space:nowrap;color:#fff;background:#6b7280}"
    ".b-verified{background:#1e7f4f}.b-integrity-ok{background:#1f6f8b}.b-unverified{background:#a86b00}"
    ".b-untrusted,.b-rejected{background:#b4432f}.b-invalid,.b-error{background:#a3121f}"
    ".b-unsigned{background:#e5e7eb;color:#374151}.b-expired{background:#a3121f}.b-soon{background:#a86b00}"
    ".b-allow{background:#1e7f4f}.b-deny{background:#a3121f}.b-warn{background:#9a6700}"
    ".fmt{display:inline-block;padding:0 6px;margin:1px 2px 1px 0;border:1px solid #9db3d6;"
    "border-radius:4px;background:#eef4ff;font-size:12px;white-space:nowrap}"
    ".muted{color:#6b7280}.bad{color:#a3121f;font-weight:600}"
    ".bar{display:flex;height:10px;width:100%;background:#e5e7eb;border-radius:5px;overflow:hidden}"
    ".bar .s{background:#1e7f4f}.bar .u{background:#c0392b}.bar .x{background:#888}"
    "form.filter{display:flex;flex-wrap:wrap;gap:8px;align-items:end;margin-bottom:8px}"
    "form.filter label{display:flex;flex-direction:column;font-size:12px;color:#4b5563}"
    "form.filter input,form.filter select{font-size:13px;padding:3px 6px}"
    ".pager{display:flex;gap:12px;align-items:center;margin-top:8px}"
    "svg.chart{width:100%;height:auto;max-width:1300px}svg.spark{width:120px;height:24px}"
    "dl.facts{display:grid;grid-template-columns:180px 1fr;gap:4px 12px;margin:0}"
    "dl.facts dt{font-weight:600;color:#4b5563}dl.facts dd{margin:0;overflow-wrap:anywhere}"
    ".legend span{display:inline-block;margin-right:14px;font-size:12px}"
    ".legend i{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px}"
)

STATUS_WORDS = (
    "verified",
    "integrity-ok",
    "unverified",
    "untrusted",
    "rejected",
    "invalid",
    "unsigned",
    "error",
)


def badge(word: str, kind: str | None = None) -> str:
    """A status (or other word) as a coloured badge; an unknown word gets the neutral colour, and its text
    is escaped (statuses are ours, but decisions and flags may come from a policy)."""
    cls = (
        f"b-{kind or word}"
        if (kind or word) in (*STATUS_WORDS, "expired", "soon", "allow", "deny", "warn")
        else ""
    )
    return f"<span class='badge {cls}'>{escape(word)}</span>"


def format_tags(formats: list[str]) -> str:
    """The signature formats present, as small tags; `none` in grey when there are none."""
    if not formats:
        return "<span class='muted'>none</span>"
    return "".join(f"<span class='fmt'>{escape(f)}</span>" for f in formats)


def digest_cell(digest: str) -> str:
    """A digest cut to its column with an ellipsis; the whole one in its title, to hover or copy."""
    return f"<td class='digest' title='{escape(digest)}'>{escape(digest)}</td>"


def share_bar(signed: int, unsigned: int, errors: int = 0) -> str:
    total = max(1, signed + unsigned + errors)
    parts = "".join(
        f"<span class='{cls}' style='width:{100 * n / total:.1f}%'></span>"
        for cls, n in (("s", signed), ("u", unsigned), ("x", errors))
        if n
    )
    return f"<div class='bar' title='{signed} signed, {unsigned} unsigned, {errors} errors'>{parts}</div>"


def cards(items: list[tuple[str, int | str]]) -> str:
    return (
        "<div class='cards'>"
        + "".join(f"<div class='card'><b>{escape(str(v))}</b>{escape(label)}</div>" for label, v in items)
        + "</div>"
    )
