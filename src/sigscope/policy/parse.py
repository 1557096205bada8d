"""Reading a policy document's bytes: YAML or JSON, as hostile input.

The document is at most MAX_DOCUMENT bytes of UTF-8, parsed by PyYAML's safe loader (JSON is read the same
way); a key given twice in one mapping, an alias (`*name`, the billion-laughs shape), a non-string key and
nesting deeper than MAX_DEPTH are refused with the line they are on.
"""

from __future__ import annotations

from typing import Any

import yaml

MAX_DOCUMENT = 1 << 20
MAX_DEPTH = 64


class DocumentError(ValueError):
    """The bytes are not a document this loader accepts; the message is for a user."""


class _StrictLoader(yaml.SafeLoader):
    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise DocumentError(
                f"line {event.start_mark.line + 1}: aliases (*{event.anchor}) are not allowed"
            )
        depth = getattr(self, "_depth", 0)
        if depth >= MAX_DEPTH:
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise DocumentError(f"line {mark.line + 1}: nests deeper than {MAX_DEPTH} levels")
        self._depth = depth + 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth = depth

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                raise DocumentError(f"line {line}: a key must be a string, not {key!r}")
            if key in seen:
                raise DocumentError(f"line {line}: duplicate key {key!r}")
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def read_document(data: bytes) -> Any:
    """The document's value; DocumentError when it cannot be read."""
    if len(data) > MAX_DOCUMENT:
        raise DocumentError(f"larger than {MAX_DOCUMENT} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"not UTF-8 text (byte {exc.start})") from None
    try:
        documents = list(yaml.load_all(text, Loader=_StrictLoader))
    except DocumentError:
        raise
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise DocumentError(f"{where}not valid YAML or JSON ({problem})") from None
    except RecursionError:
        raise DocumentError(f"nests deeper than {MAX_DEPTH} levels") from None
    if len(documents) != 1:
        raise DocumentError(f"holds {len(documents)} documents, expected one")
    return documents[0]


# Dates stay strings, as JSON has them: a condition comparing `2024-01-01` compares text.
_StrictLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
