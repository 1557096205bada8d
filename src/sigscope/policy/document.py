"""A policy document, validated and with its trust material loaded: the immutable LoadedPolicy.

`parse_policy` is pure (the document's bytes, and the bytes of every file it names, in; the policy out);
`load_policy` reads the files and calls it. Every problem is collected and reported at once, each naming its
place in the document (`rules[2].authorities[0].key.path: no such file`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sigscope.errors import SigscopeError
from sigscope.formats.notation import DEFAULT_MAX_SIGNATURES
from sigscope.policy.conditions import Condition, ConditionError
from sigscope.policy.match import ImageName, Pattern, compile_pattern, pattern_problem
from sigscope.policy.parse import DocumentError, read_document
from sigscope.policy.schema import ATTESTATION_SIGNERS, SCHEMA, SIGNATURE_KINDS
from sigscope.trust.apply import TrustSet
from sigscope.verify import Policy as SignaturePolicy

if TYPE_CHECKING:
    from sigscope.sources.lookaside import RegistriesD
    from sigscope.trust import containers_policy as cp
    from sigscope.trust.identity import IdentityPolicy
    from sigscope.trust.notation_policy import NotationTrust

MAX_TRUST_FILE = 16 << 20  # a trust file (keyring, trusted root, PEM bundle) read whole


class PolicyError(SigscopeError):
    """A policy that cannot be used; `errors` lists every problem, each `path: what is wrong`."""

    def __init__(self, errors: list[str], source: str = "policy") -> None:
        self.errors = errors
        shown = "; ".join(errors[:5]) + (f"; … {len(errors) - 5} more" if len(errors) > 5 else "")
        plural = "s" if len(errors) != 1 else ""
        super().__init__(f"invalid {source} ({len(errors)} problem{plural}): {shown}")


@dataclass(frozen=True)
class AttestationSpec:
    predicate_type: str
    # who may sign it: the name of a key/keyless/certificate authority of the rule, or an inline signer
    # (an Authority of its own, never counted toward the threshold)
    by: tuple[str | Authority, ...]
    conditions: tuple[Condition, ...]

    @property
    def signers_text(self) -> str:
        return ", ".join(item if isinstance(item, str) else item.describe for item in self.by)


@dataclass(frozen=True)
class Authority:
    """One authority of a rule, its trust material loaded."""

    name: str
    kind: str  # key | keyless | certificate | notation | gpg | containersPolicy | attestation | signatures
    where: str  # its place in the document, e.g. rules[0].authorities[1]
    describe: str  # what a reason calls its trust material: "keys/release.pub", "identity release@…"
    # signature kinds: one TrustSet per identity alternative (keyless/certificate list several)
    trusts: tuple[TrustSet, ...] = ()
    signature_policy: SignaturePolicy = field(default_factory=SignaturePolicy)
    notation: NotationTrust | None = None
    containers: cp.Policy | None = None
    containers_files: Mapping[str, bytes | str] = field(default_factory=dict)
    registries_d: RegistriesD | None = None
    attestation: AttestationSpec | None = None
    max_signatures: int = DEFAULT_MAX_SIGNATURES  # Notary Project signatures evaluated at most
    required: bool = False  # satisfied besides the threshold (which counts only the others)


@dataclass(frozen=True)
class Rule:
    name: str
    where: str
    patterns: tuple[Pattern, ...]
    mode: str = "enforce"
    threshold: int = 1
    authorities: tuple[Authority, ...] = ()
    static: str | None = None
    on_error: str = "deny"

    def authority(self, name: str) -> Authority | None:
        return next((a for a in self.authorities if a.name == name), None)

    @property
    def counted(self) -> int:
        """Authorities the threshold counts: those not marked required."""
        return sum(not a.required for a in self.authorities)

    @property
    def registries_d(self) -> RegistriesD | None:
        """Where discovery reads GPG lookaside signatures (every authority of a rule names the same)."""
        return next((a.registries_d for a in self.authorities if a.registries_d is not None), None)


@dataclass(frozen=True)
class Match:
    kind: str  # exempt | static | rule | unmatched
    rule: Rule | None
    decision: str | None  # allow | deny for exempt, static and unmatched; None: the authorities decide
    reason: str = ""


class LoadedPolicy:
    """A validated policy; immutable once loaded."""

    def __init__(
        self,
        *,
        rules: tuple[Rule, ...],
        exempt_images: tuple[Pattern, ...],
        exempt_namespaces: tuple[str, ...],
        unmatched: str,
        version: str,
        source: str,
    ) -> None:
        self.rules = rules
        self.exempt_images = exempt_images
        self.exempt_namespaces_ = exempt_namespaces
        self.unmatched = unmatched
        self.version = version
        self.source = source

    def exempt_namespace(self, namespace: str) -> bool:
        import fnmatch

        return any(fnmatch.fnmatchcase(namespace, pattern) for pattern in self.exempt_namespaces_)

    def match(self, image: str) -> Match:
        """Which rule decides `image`: pure. PolicyError when two equally specific rules match it, or when
        the reference does not parse."""
        from sigscope.policy.match import safe_image_name

        name = safe_image_name(image)
        if name is None:
            raise PolicyError([f"{image!r}: not an image reference"], self.source)
        for index, pattern in enumerate(self.exempt_images):
            if pattern.matches(name):
                return Match(
                    "exempt", None, "allow", f"exempt by exemptions.images[{index}] {pattern.text!r}"
                )
        best: list[tuple[Rule, Pattern]] = []
        for rule in self.rules:
            found = _best_pattern(rule, name)
            if found is None:
                continue
            if not best or found.specificity > best[0][1].specificity:
                best = [(rule, found)]
            elif found.specificity == best[0][1].specificity:
                best.append((rule, found))
        if not best:
            return Match("unmatched", None, self.unmatched, f"no rule matches; unmatched: {self.unmatched}")
        if len(best) > 1:
            names = " and ".join(f"{r.where} ({r.name!r}: {p.text!r})" for r, p in best)
            raise PolicyError([f"{image}: equally specific rules match: {names}"], self.source)
        rule, pattern = best[0]
        if rule.static is not None:
            return Match("static", rule, rule.static, f"rule {rule.name}: static {rule.static}")
        return Match("rule", rule, None, f"rule {rule.name} ({pattern.text})")

    def needs_registry(self, image: str) -> bool:
        return self.match(image).kind == "rule"

    def rule_on_error(self, image: str) -> str:
        rule = self.match(image).rule
        return rule.on_error if rule is not None else "deny"


def _best_pattern(rule: Rule, name: ImageName) -> Pattern | None:
    found = [p for p in rule.patterns if p.matches(name)]
    return max(found, key=lambda p: p.specificity) if found else None


# ---------------------------------------------------------------- schema errors


def _where(path: Iterator[Any] | Any) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _schema_errors(document: Any) -> list[str]:
    import jsonschema

    validator = jsonschema.Draft202012Validator(SCHEMA)
    errors: list[str] = []
    for error in validator.iter_errors(document):
        errors.extend(_describe(error))
    return sorted(set(errors), key=_sort_key)


def _sort_key(text: str) -> tuple[str, str]:
    where, _, what = text.partition(": ")
    return where, what


def _describe(error: Any) -> list[str]:
    where = _where(error.absolute_path) or "(document)"
    kind, schema, instance = error.validator, error.schema, error.instance
    if kind == "additionalProperties" and isinstance(instance, dict):
        known = set(schema.get("properties", {}))
        prefix = "" if where == "(document)" else f"{where}."
        return [f"{prefix}{name}: unknown field" for name in instance if name not in known]
    if kind == "required":
        missing = [name for name in error.validator_value if name not in instance]
        prefix = "" if where == "(document)" else f"{where}."
        return [f"{prefix}{name}: required" for name in missing]
    if (
        kind == "anyOf"
    ):  # an attestation's `by` item: a name, or an inline signer (report what is wrong in it)
        if isinstance(instance, dict):
            inner = [
                e for e in error.context or () if e.relative_schema_path and e.relative_schema_path[0] == 1
            ]
            found = sorted({text for e in inner for text in _describe(e)})
            if found:
                return found
        return [f"{where}: must be an authority name or a signer ({{key|keyless|certificate: …}})"]
    if kind == "oneOf" and all("required" in option for option in error.validator_value):
        names = [option["required"][0] for option in error.validator_value]
        given = [n for n in names if isinstance(instance, dict) and n in instance]
        if given:
            return [f"{where}: give one of {', '.join(names)}, not {' and '.join(given)}"]
        return [f"{where}: needs one of {', '.join(names)}"]
    if kind == "not" and isinstance(instance, dict) and "issuer" in instance:
        return [f"{where}: give issuer or issuerRegExp, not both"]
    if kind == "enum":
        return [f"{where}: must be one of {', '.join(map(str, error.validator_value))}, not {instance!r}"]
    if kind == "const":
        return [f"{where}: must be {error.validator_value}, not {instance!r}"]
    if kind == "type":
        return [f"{where}: must be {_article(error.validator_value)}, not {_json_type(instance)}"]
    if kind == "pattern":
        return [f"{where}: {instance!r} does not match {error.validator_value}"]
    if kind == "minItems":
        return [f"{where}: needs at least {error.validator_value} item(s)"]
    if kind in ("minimum", "minLength", "maxLength"):
        return [f"{where}: {kind} {error.validator_value}"]
    return [f"{where}: {error.message}"]


def _article(kind: Any) -> str:
    if isinstance(kind, list):
        return " or ".join(_article(k) for k in kind)
    return {"object": "an object", "array": "an array", "integer": "an integer"}.get(kind, f"a {kind}")


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, int | float):
        return "a number"
    return "a string"


# ---------------------------------------------------------------- referenced files


@dataclass(frozen=True)
class Reference:
    """A file or directory the document names, resolved against the policy file's directory."""

    where: str  # e.g. rules[0].authorities[1].key.path
    path: Path
    directory: bool = False


def references(document: Any, base: Path) -> list[Reference]:
    """Every trust file and directory a schema-valid document names, in document order."""
    found: list[Reference] = []

    def signer(at: str, spec: dict[str, Any]) -> None:
        """The files of a key, keyless or certificate signer at `at` (an authority or an inline `by`)."""

        def add(where: str, value: str) -> None:
            found.append(Reference(f"{at}.{where}", base / value))

        if "key" in spec and "path" in spec["key"]:
            add("key.path", spec["key"]["path"])
        if "keyless" in spec:
            add("keyless.trustedRoot", spec["keyless"]["trustedRoot"])
        if "certificate" in spec:
            add("certificate.roots", spec["certificate"]["roots"])
            for i, path in enumerate(spec["certificate"].get("intermediates", [])):
                add(f"certificate.intermediates[{i}]", path)

    for r, rule in enumerate(document.get("rules", [])):
        for a, authority in enumerate(rule.get("authorities", [])):
            at = f"rules[{r}].authorities[{a}]"

            def add(where: str, value: str, directory: bool = False) -> None:
                found.append(Reference(f"{at}.{where}", base / value, directory))  # noqa: B023

            signer(at, authority)
            for b, item in enumerate(authority.get("attestation", {}).get("by", [])):
                if isinstance(item, dict):
                    signer(f"{at}.attestation.by[{b}]", item)
            if "notation" in authority:
                add("notation.trustPolicy", authority["notation"]["trustPolicy"])
                add("notation.trustStore", authority["notation"]["trustStore"], True)
            for kind in ("gpg", "containersPolicy"):
                spec = authority.get(kind, {})
                if "registriesD" in spec:
                    add(f"{kind}.registriesD", spec["registriesD"], True)
            if "gpg" in authority:
                add("gpg.keyring", authority["gpg"]["keyring"])
            if "containersPolicy" in authority:
                add("containersPolicy.path", authority["containersPolicy"]["path"])
    return found


def version_of(data: bytes, files: Mapping[Path, bytes]) -> str:
    """sha256 over the document and every trust file it references (name and content), in a fixed order."""
    digest = hashlib.sha256(b"sigscope-policy-v1\0")
    digest.update(hashlib.sha256(data).digest())
    for path in sorted(files):
        digest.update(str(path).encode("utf-8", "surrogateescape") + b"\0")
        digest.update(hashlib.sha256(files[path]).digest())
    return "sha256:" + digest.hexdigest()


# ---------------------------------------------------------------- building


class _Builder:
    """Turns a schema-valid document into rules, collecting every problem."""

    def __init__(
        self, base: Path, files: Mapping[Path, bytes], loaded: Mapping[Path, Any], errors: list[str]
    ) -> None:
        self.base = base
        self.files = files
        self.loaded = loaded
        self.errors = errors

    def error(self, where: str, what: str) -> None:
        self.errors.append(f"{where}: {what}")

    def file(self, where: str, value: str) -> bytes | None:
        path = self.base / value
        data = self.files.get(path)
        if data is None:
            problem = self.loaded.get(path)
            self.error(where, problem if isinstance(problem, str) else "no such file")
        return data

    def directory(self, where: str, value: str) -> Any:
        found = self.loaded.get(self.base / value)
        if found is None or isinstance(found, str):
            self.error(where, found if isinstance(found, str) else "no such directory")
            return None
        return found

    def identities(self, where: str, raw: list[dict[str, str]]) -> list[IdentityPolicy]:
        from sigscope.trust.identity import IdentityPolicy
        from sigscope.trust.identity import PolicyError as IdentityError

        out = []
        for i, spec in enumerate(raw):
            try:
                out.append(
                    IdentityPolicy.build(
                        spec.get("subject"),
                        spec.get("subjectRegExp"),
                        spec.get("issuer"),
                        spec.get("issuerRegExp"),
                    )
                )
            except IdentityError as exc:
                field_name = "issuerRegExp" if "issuer" in str(exc) else "subjectRegExp"
                detail = str(exc).partition(": ")[2] or str(exc)
                self.error(f"{where}.identities[{i}].{field_name}", detail)
        return out

    def certificate_trusts(self, policies: list[IdentityPolicy], **material: Any) -> tuple[TrustSet, ...]:
        from sigscope.trust.identity import CertificateTrust

        return tuple(TrustSet(certificates=CertificateTrust(policy=p, **material)) for p in policies)

    def certs(self, where: str, value: str) -> list[Any]:
        from sigscope.trust.certs import CertificateError, load_pem_chain

        data = self.file(where, value)
        if data is None:
            return []
        try:
            found = load_pem_chain(data)
        except CertificateError as exc:
            self.error(where, f"not a PEM certificate bundle ({exc})")
            return []
        if not found:
            self.error(where, "holds no certificate")
        return found

    def authority(self, where: str, raw: dict[str, Any]) -> Authority | None:
        kind = next(
            k for k in raw if k not in ("name", "annotations", "exactReference", "signedIdentity", "required")
        )
        spec = raw[kind]
        at = f"{where}.{kind}"
        extras = [k for k in ("annotations", "exactReference", "signedIdentity") if k in raw]
        if extras and kind not in SIGNATURE_KINDS:
            self.error(
                f"{where}.{extras[0]}", f"applies to signature authorities ({', '.join(SIGNATURE_KINDS)})"
            )
        signature_policy = SignaturePolicy()
        if kind in SIGNATURE_KINDS:
            try:
                signature_policy = SignaturePolicy(
                    exact_reference=bool(raw.get("exactReference", False)),
                    annotations=dict(raw.get("annotations", {})),
                    signed_identity=raw.get("signedIdentity"),
                )
            except SigscopeError as exc:
                self.error(f"{where}.signedIdentity", exc.message)
        common = {
            "name": raw["name"],
            "kind": kind,
            "where": where,
            "signature_policy": signature_policy,
            "required": bool(raw.get("required", False)),
        }
        if kind == "key":
            from sigscope.trust.keys import KeyError_, load_public_key

            if "path" in spec:
                data, label = (
                    self.file(f"{at}.path", spec["path"]),
                    spec["path"],
                )
                where_key = f"{at}.path"
            else:
                data, label, where_key = spec["pem"].encode(), "the inline key", f"{at}.pem"
            if data is None:
                return None
            try:
                key = load_public_key(data)
            except KeyError_ as exc:
                self.error(where_key, str(exc))
                return None
            return Authority(describe=label, trusts=(TrustSet(keys=(key,)),), **common)
        if kind == "keyless":
            from sigscope.trust.sigstore_offline import TrustedRootError, load_trusted_root

            data = self.file(f"{at}.trustedRoot", spec["trustedRoot"])
            policies = self.identities(at, spec["identities"])
            if data is None:
                return None
            try:
                root = load_trusted_root(data, spec["trustedRoot"])
            except TrustedRootError as exc:
                self.error(f"{at}.trustedRoot", exc.message)
                return None
            trusts = self.certificate_trusts(policies, sigstore=root)
            return Authority(describe=_identities_text(policies), trusts=trusts, **common)
        if kind == "certificate":
            roots = self.certs(f"{at}.roots", spec["roots"])
            intermediates = [
                c
                for i, p in enumerate(spec.get("intermediates", []))
                for c in self.certs(f"{at}.intermediates[{i}]", p)
            ]
            policies = self.identities(at, spec["identities"])
            trusts = self.certificate_trusts(policies, roots=tuple(roots), intermediates=tuple(intermediates))
            return Authority(describe=_identities_text(policies), trusts=trusts, **common)
        if kind == "notation":
            from sigscope.trust.notation_policy import NotationTrust, TrustPolicyError
            from sigscope.trust.notation_policy import parse_policy as parse_trust_policy

            data = self.file(f"{at}.trustPolicy", spec["trustPolicy"])
            store = self.directory(f"{at}.trustStore", spec["trustStore"])
            if data is None or store is None:
                return None
            try:
                document = parse_trust_policy(data, spec["trustPolicy"])
            except TrustPolicyError as exc:
                self.error(f"{at}.trustPolicy", str(exc))
                return None
            missing = [str(ref) for ref in document.store_refs if ref not in store.stores]
            if missing:
                self.error(f"{at}.trustStore", f"holds no trust store {', '.join(missing)}")
                return None
            trust = NotationTrust(policy=document, store=store)
            return Authority(describe=spec["trustPolicy"], notation=trust, **common)
        if kind == "gpg":
            from sigscope.trust.pgp import KeyringError, load_keyrings

            registries = (
                self.directory(f"{at}.registriesD", spec["registriesD"]) if "registriesD" in spec else None
            )
            data = self.file(f"{at}.keyring", spec["keyring"])
            if data is None:
                return None
            try:
                keyring = load_keyrings([data])
            except KeyringError as exc:
                self.error(f"{at}.keyring", exc.message)
                return None
            return Authority(
                describe=spec["keyring"],
                trusts=(TrustSet(gpg_keyring=keyring),),
                registries_d=registries,
                **common,
            )
        if kind == "containersPolicy":
            from sigscope.trust import containers_policy as cp

            registries = (
                self.directory(f"{at}.registriesD", spec["registriesD"]) if "registriesD" in spec else None
            )
            data = self.file(f"{at}.path", spec["path"])
            if data is None:
                return None
            try:
                parsed = cp.parse_policy(data)
            except cp.PolicyFormatError as exc:
                self.error(f"{at}.path", exc.message)
                return None
            files = {
                p: self.files.get(Path(p), self.loaded.get(Path(p), "not read"))
                for p in containers_paths(parsed)
            }
            return Authority(
                describe=spec["path"],
                containers=parsed,
                containers_files=files,
                registries_d=registries,
                **common,
            )
        # attestation
        conditions = []
        for i, condition in enumerate(spec.get("conditions", [])):
            try:
                conditions.append(Condition.build(condition))
            except ConditionError as exc:
                field_name = "matches" if str(exc).startswith("matches") else "path"
                self.error(f"{at}.conditions[{i}].{field_name}", str(exc).removeprefix("matches: "))
        by: list[str | Authority] = []
        for b, item in enumerate(spec["by"]):
            if isinstance(item, str):
                by.append(item)
                continue
            inline = self.authority(f"{at}.by[{b}]", {"name": f"by-{b}", **item})
            if inline is not None:
                by.append(inline)
        attestation = AttestationSpec(spec["predicateType"], tuple(by), tuple(conditions))
        return Authority(describe=spec["predicateType"], attestation=attestation, **common)

    def rule(self, r: int, raw: dict[str, Any]) -> Rule:
        where = f"rules[{r}]"
        patterns = []
        for i, text in enumerate(raw["images"]):
            problem = pattern_problem(text)
            if problem is not None:
                self.error(f"{where}.images[{i}]", problem)
            else:
                patterns.append(compile_pattern(text))
        static = raw.get("static")
        listed = raw.get("authorities", [])
        if static is not None and listed:
            self.error(
                where, "static and authorities exclude each other (a static rule contacts no registry)"
            )
        if static is None and not listed:
            self.error(where, "needs authorities (or static: allow|deny)")
        counted = sum(not spec.get("required", False) for spec in listed)
        threshold = raw.get("threshold", min(1, counted))
        if listed and threshold > counted:
            not_required = " not marked required" if counted < len(listed) else ""
            self.error(
                f"{where}.threshold", f"{threshold} exceeds the rule's {counted} authorities{not_required}"
            )
        authorities: list[Authority] = []
        seen: dict[str, int] = {}
        for a, spec in enumerate(listed):
            at = f"{where}.authorities[{a}]"
            if spec["name"] in seen:
                self.error(f"{at}.name", f"{spec['name']!r} is also authorities[{seen[spec['name']]}]")
            seen.setdefault(spec["name"], a)
            built = self.authority(at, spec)
            if built is not None:
                authorities.append(built)
        for a, spec in enumerate(listed):
            if "attestation" not in spec:
                continue
            for b, name in enumerate(spec["attestation"]["by"]):
                if not isinstance(name, str):
                    continue  # an inline signer
                target = next((x for x in listed if x["name"] == name), None)
                at = f"{where}.authorities[{a}].attestation.by[{b}]"
                if target is None:
                    self.error(at, f"no authority {name!r} in this rule")
                elif not any(kind in target for kind in ATTESTATION_SIGNERS):
                    self.error(
                        at,
                        f"{name!r} is not a key, keyless or certificate authority (what signs attestations)",
                    )
        dirs = {
            str(spec[k]["registriesD"])
            for spec in listed
            for k in ("gpg", "containersPolicy")
            if k in spec and "registriesD" in spec[k]
        }
        if len(dirs) > 1:
            self.error(
                where,
                f"its authorities name {len(dirs)} different registriesD; a rule discovers once, name one",
            )
        return Rule(
            name=raw["name"],
            where=where,
            patterns=tuple(patterns),
            mode=raw.get("mode", "enforce"),
            threshold=threshold,
            authorities=tuple(authorities),
            static=static,
            on_error=raw.get("onError", "deny"),
        )


def _identities_text(policies: list[IdentityPolicy]) -> str:
    if not policies:
        return "no identity"
    return "identity " + " or ".join(p.describe_identity() for p in policies)


def containers_paths(policy: cp.Policy) -> list[str]:
    """Every file any scope of a containers policy names (read at load time, so evaluation reads nothing)."""
    found: list[str] = []
    for requirements in [
        policy.default,
        *(r for scopes in policy.transports.values() for r in scopes.values()),
    ]:
        for requirement in requirements:
            for path in requirement.paths():
                if path not in found:
                    found.append(path)
    return found


def _overlaps(rules: list[Rule], errors: list[str]) -> None:
    """Two rules' patterns equally specific and overlapping: an image both match has no single rule."""
    pairs = [(rule, i, p) for rule in rules for i, p in enumerate(rule.patterns)]
    for x, (rule_a, i, a) in enumerate(pairs):
        for rule_b, j, b in pairs[x + 1 :]:
            if rule_a is rule_b or a.specificity != b.specificity:
                continue
            if a.text == b.text or a.matches(b.sample()) or b.matches(a.sample()):
                errors.append(
                    f"{rule_b.where}.images[{j}]: {b.text!r} is as specific as {rule_a.where}.images[{i}] "
                    f"{a.text!r} and both match {b.sample() if a.matches(b.sample()) else a.sample()}: "
                    "make one more specific"
                )


def parse_policy(
    data: bytes,
    *,
    base: Path,
    files: Mapping[Path, bytes],
    loaded: Mapping[Path, Any] | None = None,
    source: str = "policy",
) -> LoadedPolicy:
    """The policy in `data`; relative paths resolve against `base`, their bytes come from `files`.
    `loaded` holds what `load_policy` read from directories (a notation trust store, a registries.d) and why
    a path could not be read. Pure; PolicyError listing every problem."""
    try:
        document = read_document(data)
    except DocumentError as exc:
        raise PolicyError([f"(document): {exc}"], source) from None
    errors = _schema_errors(document)
    if errors:
        raise PolicyError(errors, source)
    builder = _Builder(base, files, loaded or {}, errors)
    rules = [builder.rule(r, raw) for r, raw in enumerate(document["rules"])]
    names: dict[str, str] = {}
    for rule in rules:
        if rule.name in names:
            errors.append(f"{rule.where}.name: {rule.name!r} is also {names[rule.name]}")
        names.setdefault(rule.name, rule.where)
    exemptions = document.get("exemptions", {})
    exempt: list[Pattern] = []
    for i, text in enumerate(exemptions.get("images", [])):
        problem = pattern_problem(text)
        if problem is not None:
            errors.append(f"exemptions.images[{i}]: {problem}")
        else:
            exempt.append(compile_pattern(text))
    _overlaps(rules, errors)
    if errors:
        raise PolicyError(errors, source)
    return LoadedPolicy(
        rules=tuple(rules),
        exempt_images=tuple(exempt),
        exempt_namespaces=tuple(exemptions.get("namespaces", [])),
        unmatched=document.get("unmatched", "deny"),
        version=version_of(data, files),
        source=source,
    )
