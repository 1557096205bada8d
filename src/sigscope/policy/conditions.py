"""Attestation conditions: a path into the predicate and one test, never code.

The path language is a small JSONPath subset: `$` is the in-toto statement's `predicate`, followed by
`.name`, `["name"]` (any characters), `[N]` (an array index, negative from the end) and `[*]` / `.*` (every
element or member). A path that selects several values (through `*`) holds when any of them passes the test;
`exists: false` holds when it selects none. Tests: `equals` (JSON equality, so 1 ≠ "1"), `in` (equal to one of
the listed values), `exists` and `matches` (a regular expression searched in a string value, unanchored as
cosign's; anchor with ^ and $).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

MAX_PATH = 512
MAX_STEPS = 32
MAX_SELECTED = 10_000  # values one path may select, bounding `[*]` over a hostile predicate

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
_INDEX = re.compile(r"\[(-?\d{1,9})\]")
_QUOTED = re.compile(r"""\[(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')\]""")

Step = str | int | None  # member name, array index, None: every element/member


class ConditionError(ValueError):
    """A path or test that is not in the language."""


def parse_path(text: str) -> tuple[Step, ...]:
    if len(text) > MAX_PATH:
        raise ConditionError(f"longer than {MAX_PATH} characters")
    if not text.startswith("$"):
        raise ConditionError("a path starts with $ (the predicate)")
    steps: list[Step] = []
    i = 1
    while i < len(text):
        if len(steps) >= MAX_STEPS:
            raise ConditionError(f"more than {MAX_STEPS} steps")
        if text.startswith(".*", i) or text.startswith("[*]", i):
            steps.append(None)
            i += 2 if text[i] == "." else 3
            continue
        if text[i] == ".":
            name = _NAME.match(text, i + 1)
            if name is None:
                raise ConditionError(f"expected a member name after '.' at offset {i}")
            steps.append(name.group())
            i = name.end()
            continue
        index = _INDEX.match(text, i)
        if index is not None:
            steps.append(int(index.group(1)))
            i = index.end()
            continue
        quoted = _QUOTED.match(text, i)
        if quoted is not None:
            raw = quoted.group(1) if quoted.group(1) is not None else quoted.group(2)
            try:
                steps.append(json.loads('"' + raw.replace("\\'", "'") + '"'))
            except ValueError:
                raise ConditionError(f"bad escape in the quoted name at offset {i}") from None
            i = quoted.end()
            continue
        raise ConditionError(f'unexpected {text[i]!r} at offset {i} (use .name, ["name"], [N] or [*])')
    return tuple(steps)


def select(value: Any, steps: tuple[Step, ...]) -> list[Any]:
    """Every value the path selects, at most MAX_SELECTED."""
    out: list[Any] = []

    def walk(node: Any, rest: tuple[Step, ...]) -> Iterator[Any]:
        if not rest:
            yield node
            return
        step, tail = rest[0], rest[1:]
        if step is None:
            children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
            for child in children:
                yield from walk(child, tail)
        elif isinstance(step, int):
            if isinstance(node, list) and -len(node) <= step < len(node):
                yield from walk(node[step], tail)
        elif isinstance(node, dict) and step in node:
            yield from walk(node[step], tail)

    for found in walk(value, steps):
        out.append(found)
        if len(out) >= MAX_SELECTED:
            break
    return out


@dataclass(frozen=True)
class Condition:
    path: str
    steps: tuple[Step, ...]
    test: str  # equals | in | exists | matches
    operand: Any
    regex: re.Pattern[str] | None = None

    @classmethod
    def build(cls, raw: dict[str, Any]) -> Condition:
        """From the document's object (already shape-checked by the schema); ConditionError otherwise."""
        path = raw["path"]
        steps = parse_path(path)
        [test] = [t for t in ("equals", "in", "exists", "matches") if t in raw]
        regex = None
        if test == "matches":
            try:
                regex = re.compile(raw[test])
            except re.error as exc:
                raise ConditionError(f"matches: not a regular expression: {exc}") from None
        return cls(path, steps, test, raw[test], regex)

    def holds(self, predicate: Any) -> tuple[bool, str]:
        """(passed, why) against one attestation's predicate."""
        values = select(predicate, self.steps)
        if self.test == "exists":
            ok = bool(values) is bool(self.operand)
            return ok, f"{self.path} {'exists' if values else 'does not exist'}"
        if not values:
            return False, f"{self.path} does not exist"
        for value in values:
            if self._one(value):
                return True, f"{self.path} {self._describe()}"
        shown = json.dumps(values[0])[:80]
        return False, f"{self.path} is {shown}, not {self._describe()}"

    def _one(self, value: Any) -> bool:
        if self.test == "equals":
            return _same(value, self.operand)
        if self.test == "in":
            return any(_same(value, option) for option in self.operand)
        assert self.regex is not None
        return isinstance(value, str) and self.regex.search(value) is not None

    def _describe(self) -> str:
        if self.test == "equals":
            return f"equals {json.dumps(self.operand)[:80]}"
        if self.test == "in":
            return f"in {json.dumps(self.operand)[:80]}"
        return f"matches /{self.operand}/"


def _same(a: Any, b: Any) -> bool:
    """JSON equality: true is not 1, 1 is 1.0, "1" is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)
