"""Bring your own policy: a Sigstore policy-controller ClusterImagePolicy or a Kyverno ClusterPolicy with
`verifyImages`, as the sigscope policy document (`apiVersion: sigscope/v1`, `kind: Policy`) that decides
the same, or every field that has no equivalent, each named by its path.

Pure: the file's bytes and the options in, a document (plain data, ready for YAML or JSON) out. A file of
several YAML documents (or a Kubernetes `List`) becomes one document with a rule per peer rule.

Example::

    result = import_policy(Path("cip.yaml").read_bytes(), ImportOptions(trusted_root="trusted_root.json"))
    print(render(result.document, "yaml"))

Where the peers and sigscope differ in what a combination means, the import refuses instead of guessing:

- Both peers apply *every* policy that matches an image; a sigscope rule applies alone (the most specific
  glob wins). Two imported rules that can match one image are refused (:func:`may_overlap`).
- Kyverno `skipImageReferences` and `exclude` namespaces are per rule; sigscope exemptions are global, so
  they are kept only when no other rule is affected.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from sigscope.errors import UsageError
from sigscope.policy.import_cip import API_VERSIONS as CIP_VERSIONS
from sigscope.policy.import_cip import KIND as CIP_KIND
from sigscope.policy.import_cip import translate_cip
from sigscope.policy.import_common import Candidate, Fields, type_name
from sigscope.policy.import_globs import may_overlap
from sigscope.policy.import_kyverno import API_VERSIONS as KYVERNO_VERSIONS
from sigscope.policy.import_kyverno import KINDS as KYVERNO_KINDS
from sigscope.policy.import_kyverno import translate_kyverno

__all__ = [
    "MAX_DOCUMENTS",
    "MAX_POLICY_BYTES",
    "ImportOptions",
    "ImportResult",
    "PolicyImportError",
    "import_policy",
    "render",
]

MAX_POLICY_BYTES = 1024 * 1024  # a ClusterPolicy with a few keys is ~5 KiB; etcd's object limit is 1.5 MiB
MAX_DOCUMENTS = 256
MAX_DEPTH = 32  # deeper than any policy (~10 levels)
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-.")
_POLICY_CONTROLLER = "policy-controller"
_KYVERNO = "Kyverno"


class PolicyImportError(UsageError):
    """The policy cannot be imported; `errors` lists every problem, each `path: what`."""

    def __init__(self, errors: list[str]) -> None:
        count = len(errors)
        super().__init__(f"{count} part{'s' if count != 1 else ''} of the policy cannot be imported")
        self.errors = errors


@dataclass(frozen=True)
class ImportOptions:
    trusted_root: str | None = None  # the trustedRoot path written into every keyless authority
    no_match: str = "deny"  # policy-controller's no-match-policy (its default): the document's `unmatched`
    allow_partial: bool = False  # drop what cannot be imported (a whole rule) instead of failing


@dataclass(frozen=True)
class ImportResult:
    document: dict[str, Any]
    warnings: list[str] = field(default_factory=list)  # what --allow-partial dropped, and why


def import_policy(data: bytes, options: ImportOptions) -> ImportResult:
    """The sigscope policy document equivalent to the peer policies in `data` (YAML or JSON).

    Raises PolicyImportError listing every problem (or, with allow_partial, only those that leave nothing
    to import or concern the whole document).
    """
    if options.no_match not in ("deny", "allow"):
        raise UsageError(f"no-match policy {options.no_match!r} is neither deny nor allow")
    documents = _load(data)
    candidates = _translate(documents, options.trusted_root)
    fatal: list[str] = []
    sources = {c.source for c in candidates}
    if len(sources) > 1:
        fatal.append(
            "the file mixes policy-controller and Kyverno policies: import each peer's file on its own"
        )
    _check_names(candidates)
    _check_overlaps(candidates)
    exempt_images = _exempt_images(candidates)
    namespaces, namespace_problems = _exempt_namespaces(candidates)
    problems = [p for c in candidates for p in c.problems]
    if fatal or (problems and not options.allow_partial):
        raise PolicyImportError(fatal + problems + namespace_problems)
    warnings = problems + namespace_problems
    rules = [c.rule for c in candidates if not c.problems and c.rule]
    if not rules:
        raise PolicyImportError([*warnings, "nothing is left to import"])
    document: dict[str, Any] = {
        "apiVersion": "sigscope/v1",
        "kind": "Policy",
        "unmatched": options.no_match if _POLICY_CONTROLLER in sources else "allow",
    }
    exemptions: dict[str, Any] = {}
    if exempt_images:
        exemptions["images"] = exempt_images
    if namespaces and not namespace_problems:
        exemptions["namespaces"] = namespaces
    if exemptions:
        document["exemptions"] = exemptions
    document["rules"] = rules
    return ImportResult(document=document, warnings=warnings)


def render(document: Mapping[str, Any], fmt: str) -> str:
    """The document as YAML or JSON text; both escape control characters, so the text is safe to print."""
    if fmt == "json":
        return json.dumps(document, indent=2) + "\n"
    return yaml.dump(dict(document), Dumper=_Dumper, sort_keys=False, default_flow_style=False, width=110)


class _Dumper(yaml.SafeDumper):
    """PEM keys as literal blocks, the way people write them in YAML."""

    def ignore_aliases(self, data: Any) -> bool:
        # One signer shared by several authorities is written out each time: a policy refuses aliases.
        return True


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value and _plain_lines(value) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


def _plain_lines(value: str) -> bool:
    return all(line.isprintable() and line == line.rstrip() for line in value.split("\n"))


_Dumper.add_representer(str, _text)


# ---------------------------------------------------------------------------- reading


class _StrictLoader(yaml.SafeLoader):
    """YAML as a Kubernetes API server would accept it, and no more: no duplicate keys (kubectl refuses
    them), no anchors or aliases (a few aliases can stand for a huge document), bounded nesting."""

    depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
        if self.check_event(yaml.AliasEvent):
            raise yaml.MarkedYAMLError(None, None, "anchors and aliases are refused", mark)
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise yaml.MarkedYAMLError(None, None, f"nesting deeper than {MAX_DEPTH} levels", mark)
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise yaml.MarkedYAMLError(None, None, "merge keys (<<) are refused", key_node.start_mark)
            if not isinstance(key_node, yaml.ScalarNode):
                raise yaml.MarkedYAMLError(None, None, "a key that is not a string", key_node.start_mark)
            key = self.construct_object(key_node)
            if not isinstance(key, str):
                raise yaml.MarkedYAMLError(
                    None, None, f"the key {key!r} is not a string", key_node.start_mark
                )
            if key in seen:
                raise yaml.MarkedYAMLError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _load(data: bytes) -> list[Any]:
    if len(data) > MAX_POLICY_BYTES:
        raise UsageError(f"the policy file is larger than {MAX_POLICY_BYTES // 1024} KiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"the policy file is not UTF-8 text (byte {exc.start})") from None
    documents: list[Any] = []
    try:
        for document in yaml.load_all(text, Loader=_StrictLoader):
            if document is None:
                continue
            documents.append(document)
            if len(documents) > MAX_DOCUMENTS:
                raise UsageError(f"the policy file holds more than {MAX_DOCUMENTS} documents")
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        at = f" (line {where.line + 1}, column {where.column + 1})" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise UsageError(f"the policy file is not valid YAML: {problem}{at}") from None
    if not documents:
        raise UsageError("the policy file holds no policy")
    return documents


def _unlisted(documents: list[Any]) -> list[tuple[str, Any]]:
    """(path prefix, object): a Kubernetes `List` (kubectl get -o yaml) contributes its items."""
    out: list[tuple[str, Any]] = []
    several = len(documents) > 1
    for index, document in enumerate(documents):
        prefix = f"documents[{index}]" if several else ""
        if (
            isinstance(document, Mapping)
            and document.get("kind") == "List"
            and document.get("apiVersion") == "v1"
        ):
            items = document.get("items")
            if isinstance(items, list) and len(items) <= MAX_DOCUMENTS:
                out.extend(
                    (f"{prefix}.items[{i}]" if prefix else f"items[{i}]", item)
                    for i, item in enumerate(items)
                )
                continue
        out.append((prefix, document))
    return out


def _translate(documents: list[Any], trusted_root: str | None) -> list[Candidate]:
    candidates: list[Candidate] = []
    for prefix, document in _unlisted(documents):
        api, kind = (
            (document.get("apiVersion"), document.get("kind"))
            if isinstance(document, Mapping)
            else (None, None)
        )
        source = _KYVERNO if api in KYVERNO_VERSIONS and kind in KYVERNO_KINDS else _POLICY_CONTROLLER
        candidate = Candidate(source, prefix)
        doc = Fields(document, prefix, candidate)
        if not doc.ok:
            candidates.append(candidate)
            continue
        if not (api in CIP_VERSIONS and kind == CIP_KIND) and source != _KYVERNO:
            candidate.refuse(
                doc.at("kind"),
                f"{kind if isinstance(kind, str) else type_name(kind)} ({api}) is neither a "
                f"policy-controller ClusterImagePolicy ({', '.join(CIP_VERSIONS)}) nor a Kyverno "
                f"ClusterPolicy ({', '.join(KYVERNO_VERSIONS)})",
            )
            candidates.append(candidate)
            continue
        doc.known("apiVersion", "kind", "metadata", "spec", ignored=("status",))
        name = _name(doc)
        if source == _KYVERNO:
            candidates.extend(translate_kyverno(doc, name, trusted_root))
        else:
            candidates.append(translate_cip(doc, name, trusted_root))
    return candidates


def _name(doc: Fields) -> str:
    metadata = doc.sub("metadata")
    name = metadata.text("name", required=True) if metadata is not None and metadata.ok else None
    if metadata is None:
        doc.candidate.refuse(doc.at("metadata"), "required")
    if name is None:
        return "policy"
    if len(name) > 253 or not set(name) <= _NAME_CHARS:
        doc.candidate.refuse(doc.at("metadata.name"), "not a Kubernetes object name")
        return "policy"
    return name


# ---------------------------------------------------------------------------- across rules


def _usable(candidates: list[Candidate]) -> list[Candidate]:
    return [c for c in candidates if not c.problems and c.rule.get("images")]


def _check_names(candidates: list[Candidate]) -> None:
    seen: dict[str, Candidate] = {}
    for candidate in candidates:
        name = candidate.rule.get("name")
        if not isinstance(name, str):
            continue
        if name in seen:
            candidate.refuse(
                candidate.path or "metadata.name",
                f"the rule name {name!r} is taken by {seen[name].path or 'an earlier rule'}",
            )
        else:
            seen[name] = candidate


def _check_overlaps(candidates: list[Candidate]) -> None:
    """Refuse the later of two rules that can match one image: the peer needs both to pass, sigscope would
    apply only the more specific one."""
    kept: list[Candidate] = []
    for candidate in _usable(candidates):
        clash = _clash(candidate, kept)
        if clash is None:
            kept.append(candidate)
            continue
        mine, other, theirs = clash
        candidate.refuse(
            candidate.image_paths[mine],
            f"matches images that rule {other.rule['name']!r} ({other.image_paths[theirs]}) matches too; "
            f"{other.source} requires both, a sigscope rule applies alone (merge them by hand)",
        )


def _clash(candidate: Candidate, others: list[Candidate]) -> tuple[int, Candidate, int] | None:
    for other in others:
        for i, mine in enumerate(candidate.rule["images"]):
            for j, theirs in enumerate(other.rule["images"]):
                if may_overlap(mine, theirs):
                    return i, other, j
    return None


def _exempt_images(candidates: list[Candidate]) -> list[str]:
    """Kyverno's per-rule skipImageReferences as global exemptions, where no other rule matches them."""
    out: list[str] = []
    usable = _usable(candidates)
    for candidate in usable:
        for glob, path in candidate.skips:
            others = [o for o in usable if o is not candidate]
            clash = next((o for o in others for g in o.rule["images"] if may_overlap(glob, g)), None)
            if clash is not None:
                candidate.refuse(
                    path,
                    f"also skips images that rule {clash.rule['name']!r} checks; "
                    "sigscope exemptions apply to every rule",
                )
            elif glob not in out:
                out.append(glob)
    return out


def _exempt_namespaces(candidates: list[Candidate]) -> tuple[list[str], list[str]]:
    """Excluded namespaces as global exemptions, when every rule excludes the same ones."""
    usable = _usable(candidates)
    sets = {c.namespaces for c in usable}
    if len(sets) <= 1:
        return sorted(next(iter(sets), frozenset())), []
    path = next(c.namespaces_path for c in usable if c.namespaces_path)
    return [], [f"{path}: rules exclude different namespaces; sigscope exempts namespaces from every rule"]
