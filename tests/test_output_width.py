"""Output that fits: pretty tables within the terminal's width, wide and machine formats never wrapped or cut,
names from outside escaped before they reach a terminal."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path

import pytest
from rich.cells import cell_len
from rich.console import Console
from rich.table import Table
from test_reports import D1, results
from testbed.cli import run_sigscope as run

from sigscope.report.cells import (
    Fit,
    cell,
    cut_middle,
    print_fields,
    printable,
    short_digest,
    shrink_to_fit,
)
from sigscope.report.render import make_renderer
from sigscope.report.summary import Summary
from sigscope.scan.registry import ImageResult

FILES = Path(__file__).parent / "fixtures" / "files"
STATUSES = ("verified", "unverified", "integrity-ok", "untrusted", "invalid", "unsigned", "error")
WIDTHS = (80, 100, 200)
# Four directories of 70 characters and the file: a path of over 300 characters below the scanned root.
DEEP = "/".join(f"{i}" * 70 for i in range(1, 5)) + "/deep-signed.jar"
LONG_REPO = "team/" + "/".join(["platform-engineering-shared-services"] * 7) + "/api-gateway"


# ---------------------------------------------------------------- cells


def test_printable_escapes_control_and_bidi_characters() -> None:
    assert printable("plain name-1.0_ü 日本") == "plain name-1.0_ü 日本"
    assert printable("a\x1b[2Jb\rc\nd\te\x7f\x85") == "a\\x1b[2Jb\\rc\\nd\\te\\x7f\\x85"
    assert printable("invoice\u202egpj.exe") == "invoice\\u202egpj.exe"
    # A cell is text, not markup: a name like `[red]x[/red]` is shown as written.
    out = io.StringIO()
    Console(file=out, width=80).print(cell("[bold red]x[/] \x1b]0;title\x07"))
    assert out.getvalue() == "[bold red]x[/] \\x1b]0;title\\x07\n"


def test_cut_middle_keeps_the_start_and_the_file_or_tag() -> None:
    path = "/tmp/pytest-of-someone/pytest-123/test_scan0/tree/jars/signed-rsa.jar"
    for width in (16, 24, 40, 60):
        shown = cut_middle(path, width)
        assert cell_len(shown) <= width and shown.count("…") == 1
        assert shown.startswith(path[:3]) and shown.endswith(path[-7:])
    assert cut_middle(path, 40).endswith("/signed-rsa.jar")
    assert cut_middle("registry.example.com/" + LONG_REPO + ":v1.2.3", 50).endswith("/api-gateway:v1.2.3")
    assert cut_middle(path, len(path)) == path
    wide_chars = cut_middle("日本語のパス/ファイル名.jar", 12)  # two cells a character
    assert cell_len(wide_chars) <= 12 and wide_chars.startswith("日") and wide_chars.endswith(".jar")
    assert short_digest(D1) == "sha256:11111111…" and short_digest("") == ""


def test_shrink_to_fit_shares_the_room_by_weight_and_refuses_too_little() -> None:
    def table() -> Table:
        t = Table()
        t.add_column("Path")
        t.add_column("Status", no_wrap=True)
        t.add_column("Signer")
        t.add_row(Fit("a/" * 60 + "file.jar"), "integrity-ok", Fit("CN=" + "x" * 80, where="end"))
        t.add_row(Fit("short"), "verified", Fit("CN=y", where="end"))
        return t

    for width in (60, 80, 120):
        console = Console(file=io.StringIO(), width=width)
        shaped = table()
        assert shrink_to_fit(console, shaped, {0: (3, 16), 2: (2, 12)})
        path, _, signer = shaped.columns
        assert path.width is not None and signer.width is not None and path.width > signer.width >= 12
        console.print(shaped)
        assert max(map(cell_len, console.file.getvalue().splitlines())) <= width  # type: ignore[attr-defined]
    assert not shrink_to_fit(Console(file=io.StringIO(), width=40), table(), {0: (3, 16), 2: (2, 12)})


def test_a_field_that_does_not_fit_goes_whole_on_its_own_line() -> None:
    out = io.StringIO()
    reference = "registry.example.com/" + LONG_REPO + ":1.0"
    print_fields(Console(file=out, width=80), [("Reference", reference), ("Digest", D1), ("Layers", "1")])
    lines = out.getvalue().splitlines()
    assert max(map(cell_len, lines)) <= 80
    assert lines[lines.index("Digest") + 1] == "  " + D1  # the digest whole, to copy
    assert "Layers     1" in lines


# ---------------------------------------------------------------- registry scan tables


def scan_results() -> list[ImageResult]:
    """The report tests' images, one more with a long repository name and one whose name hides escapes."""
    long, *_ = results()
    long.repository = LONG_REPO
    long.tags = ["1.4.2-rc1"]
    evil = ImageResult(source="reg:5000", repository="team/\x1b[2Jevil\rname", digest=D1, tags=["1"])
    return [*results(), long, evil]


def render(output: str, width: int, *, terminal: bool = False) -> str:
    out = io.StringIO()
    console = Console(file=out, width=width, force_terminal=terminal, color_system=None)
    summary = Summary("reg:5000")
    renderer = make_renderer(output, out, console, "reg:5000")
    for result in scan_results():
        summary.add(result)
        renderer.add(result)
    renderer.finish(summary)
    return out.getvalue()


@pytest.mark.parametrize("width", WIDTHS)
def test_pretty_registry_table_fits(width: int) -> None:
    text = render("pretty", width)
    lines = text.splitlines()
    assert max(map(cell_len, lines)) <= width
    assert {"invalid", "integrity-ok", "unsigned", "error"} <= set(re.findall(r"[a-z-]+", text))
    assert not re.search(r"│ (unverif|integri|invali|unsign)…", text)  # a status is never cut
    assert "sha256:11111111…" in text and D1 not in text.split("invalid:")[0]  # shortened in the table
    # The long repository: its start and its tag end, the middle cut, on one line.
    row = next(line for line in lines if "1.4.2-rc1" in line)
    shown = row.split("│")[1].strip()
    assert shown.startswith("team/plat") and shown.endswith("gateway:1.4.2-rc1") and "…" in shown
    # Escapes shown, never sent.
    assert "\x1b" not in text and "\r" not in text and "\\x1b[2Jevil\\rname" in text
    # Notes on their own lines beneath the table, wrapped at words: each line begins a word.
    assert any(line.startswith("invalid: team/app:0.9: cosign") for line in lines)
    assert lines[-1] == "Found 5 signatures on 3 of 5 images (1 could not be read)"


def test_narrow_pretty_registry_table_is_compact() -> None:
    narrow, roomy = render("pretty", 80), render("pretty", 200)
    assert "✅" not in narrow and "Formats" in narrow and "self-signed" in narrow
    assert "✅" in roomy and "invalid (self-signed, expired)" in roomy


@pytest.mark.parametrize("terminal", [False, True])
def test_wide_registry_table_is_whole(terminal: bool) -> None:
    """In a pipe `wide` is laid out unbounded; on a terminal narrower than it, it is not cut either."""
    text = render("wide", 1_000_000 if not terminal else 100, terminal=terminal)
    lines = text.splitlines()
    assert "…" not in text.replace("sha256-….sig", "")  # nothing cut (the location itself has an ellipsis)
    row = next(line for line in lines if LONG_REPO in line)
    assert f"{LONG_REPO}:1.4.2-rc1" in row and D1 in row  # one row, one line, every value whole
    assert "payload-digest" in text and "application/spdx+json (unsigned)" in text
    assert "\x1b" not in text and "\\x1b[2Jevil\\rname" in text


@pytest.mark.parametrize("output", ["json", "ndjson", "csv"])
def test_machine_formats_keep_names_exact(output: str) -> None:
    text = render(output, 80)
    assert f"{LONG_REPO}:1.4.2-rc1" in text and "\\x1b" not in text.replace("\\u001b", "")
    if output == "csv":
        rows = list(csv.DictReader(io.StringIO(text)))
        assert "team/\x1b[2Jevil\rname:1" in {r["path"] for r in rows}
    elif output == "json":
        assert "team/\x1b[2Jevil\rname:1" in {i["path"] for i in json.loads(text)["images"]}


# ---------------------------------------------------------------- scan fs, through the CLI


@pytest.fixture(scope="module")
def deep_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("width") / "tree"
    jars = FILES / "jar"
    for name in ("signed-rsa.jar", "signed-self.jar", "signed-expired.jar", "tampered-class.jar"):
        if not (jars / name).is_file():
            pytest.skip(f"fixture {name} missing")
        (root / "jars").mkdir(parents=True, exist_ok=True)
        shutil.copy(jars / name, root / "jars" / name)
    (root / DEEP).parent.mkdir(parents=True)
    shutil.copy(jars / "signed-rsa.jar", root / DEEP)
    shutil.copy(jars / "signed-rsa.jar", root / "jars" / "evil\x1b[31mname.jar")
    return root


def scan(root: Path, output: str, columns: int = 80) -> str:
    done = run(
        "scan", "fs", str(root), "--verify", "--ca-file", str(FILES / "pki" / "root.crt"), "-o", output,
        env={"COLUMNS": str(columns)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("width", WIDTHS)
def test_pretty_fs_table_fits(deep_tree: Path, width: int) -> None:
    text = scan(deep_tree, "pretty", width)
    lines = text.splitlines()
    assert max(map(cell_len, lines)) <= width
    assert {"verified", "untrusted", "invalid"} <= set(re.findall(r"[a-z-]+", text))
    assert not re.search(r"(verifi|untrust|invali)…", text)
    deep = next(line for line in lines if "deep-signed" in line)
    cell_text = deep.split("│")[1].strip()
    assert cell_text.startswith("111") and cell_text.endswith("/deep-signed.jar") and "…" in cell_text
    assert "\x1b" not in text and "evil\\x1b[31mname.jar" in text
    assert "jars/signed-rsa.jar" in text  # below the scanned root, whatever the temporary directory


def test_wide_and_machine_fs_outputs_never_wrap_a_long_path(deep_tree: Path) -> None:
    full = str(deep_tree / DEEP)
    assert len(full) > 300
    for output in ("wide", "csv", "ndjson"):
        text = scan(deep_tree, output)
        assert any(full in line for line in text.splitlines()), output
    document = json.loads(scan(deep_tree, "json"))
    paths = {e["path"] for e in document["filesystem"]["signatures"]}
    assert full in paths and str(deep_tree / "jars" / "evil\x1b[31mname.jar") in paths  # exact bytes
    assert "\x1b" not in scan(deep_tree, "wide")
