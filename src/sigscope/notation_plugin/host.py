"""Running a Notation signing plugin (`notation-NAME` in notation's plugin directory), as notation does.

Each command is one process: the JSON request on stdin, the response on stdout (exit 0) or an error on
stderr (exit 1, `{errorCode, errorMessage}`; any other exit, or no error JSON, is a general failure).
Everything the plugin says is untrusted: output is capped, each command has a deadline (the process is
killed when it passes), responses are checked field by field, and the signature it returns is verified
against the leaf of the chain it returns before an envelope is built around it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import json
import os
import re
import selectors
import signal
import stat
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

from sigscope.errors import SigscopeError, UsageError
from sigscope.formats import notation_build as build
from sigscope.keys import prehashed
from sigscope.model import Descriptor
from sigscope.notation_plugin import protocol as p
from sigscope.notation_plugin.install import plugin_root
from sigscope.report.escape import printable
from sigscope.sign_notation import (
    NotationSignOptions,
    SignedEnvelope,
    check_signing_material,
    seal_envelope,
    sign_request,
    signing_time_of,
)

MAX_OUTPUT = 1024 * 1024
MAX_CHAIN = 10
DEFAULT_TIMEOUT = 30.0
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


class PluginFailure(SigscopeError):
    """The plugin failed, said something malformed, or signed something that does not verify."""


@dataclass(frozen=True)
class Plugin:
    """One plugin executable with the key and configuration a signing run gives it."""

    name: str
    path: Path
    key_id: str
    config: Mapping[str, str]
    timeout: float = DEFAULT_TIMEOUT


def find_plugin(name: str, plugin_dir: str | None = None) -> Path:
    """PLUGINS/NAME/notation-NAME, which must be a regular executable file (not a symlink)."""
    if not _NAME.fullmatch(name):
        raise UsageError(f"plugin name {name[:60]!r} is not a plugin directory name")
    path = plugin_root(plugin_dir) / name / f"notation-{name}"
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        raise UsageError(f"no plugin {name}: {path} does not exist") from None
    if not stat.S_ISREG(mode):
        raise UsageError(f"plugin {name}: {path} is not a regular file (symlinks are refused)")
    if not os.access(path, os.X_OK):
        raise UsageError(f"plugin {name}: {path} is not executable")
    return path


def parse_plugin_config(items: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--plugin-config {item!r} is not KEY=VALUE")
        out[key] = value
    return out


def _run(plugin: Plugin, command: str, request: Mapping[str, Any]) -> tuple[int, bytes, bytes]:
    """Exit code, stdout and stderr of one command; killed at the deadline or at the output cap."""
    deadline = time.monotonic() + plugin.timeout
    process = subprocess.Popen(
        [str(plugin.path), command],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    assert process.stdin is not None and process.stdout is not None and process.stderr is not None
    out_fd, err_fd = process.stdout.fileno(), process.stderr.fileno()
    outputs = {out_fd: bytearray(), err_fd: bytearray()}
    try:
        try:
            process.stdin.write(json.dumps(request).encode())
            process.stdin.close()
        except BrokenPipeError:
            pass
        with selectors.DefaultSelector() as selector:
            for stream in (process.stdout, process.stderr):
                selector.register(stream, selectors.EVENT_READ)
            while selector.get_map():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PluginFailure(
                        f"plugin {plugin.name} {command}: no answer within {plugin.timeout:g} s"
                    )
                for ready, _ in selector.select(remaining):
                    chunk = os.read(ready.fd, 65536)
                    if not chunk:
                        selector.unregister(ready.fileobj)
                        continue
                    buffer = outputs[ready.fd]
                    buffer += chunk
                    if len(buffer) > MAX_OUTPUT:
                        raise PluginFailure(
                            f"plugin {plugin.name} {command}: output larger than {MAX_OUTPUT} bytes"
                        )
        code = process.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        raise PluginFailure(
            f"plugin {plugin.name} {command}: no answer within {plugin.timeout:g} s"
        ) from None
    finally:
        if process.poll() is None:
            # The whole session: a plugin's children must not outlive it holding the pipes.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        process.stdout.close()
        process.stderr.close()
    return code, bytes(outputs[out_fd]), bytes(outputs[err_fd])


def call(plugin: Plugin, command: str, request: Mapping[str, Any]) -> dict[str, Any]:
    """The plugin's JSON response to `command`, or a :class:`PluginFailure` saying what went wrong."""
    code, out, err = _run(plugin, command, request)
    where = f"plugin {plugin.name} {command}"
    if code != 0:
        error = _json(err)
        if code == 1 and isinstance(error, dict) and isinstance(error.get("errorCode"), str):
            message = str(error.get("errorMessage", ""))[:500]
            raise PluginFailure(printable(f"{where} failed: {error['errorCode'][:40]}: {message}"))
        said = err.decode("utf-8", "replace").strip().splitlines()
        detail = f": {said[0][:200]}" if said else ""
        how = f"exit code {code}" if code > 0 else f"killed by signal {-code}"
        raise PluginFailure(printable(f"{where} failed ({how}){detail}"))
    response = _json(out)
    if not isinstance(response, dict):
        raise PluginFailure(f"{where}: the response is not a JSON object")
    return response


def _json(data: bytes) -> Any:
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def _field(response: Mapping[str, Any], name: str, where: str) -> str:
    value = response.get(name)
    if not isinstance(value, str) or not value:
        raise PluginFailure(f"{where}: response field {name!r} is missing or not a string")
    return value


def describe(plugin: Plugin) -> p.KeySpec:
    """get-plugin-metadata and describe-key: the key spec, after the plugin says it can sign raw."""
    meta = call(plugin, p.GET_METADATA, {"pluginConfig": dict(plugin.config)})
    capabilities = meta.get("capabilities")
    versions = meta.get("supportedContractVersions")
    if not isinstance(capabilities, list) or p.RAW_SIGNER not in capabilities:
        raise PluginFailure(f"plugin {plugin.name} does not offer {p.RAW_SIGNER}")
    if not isinstance(versions, list) or p.CONTRACT_VERSION not in versions:
        raise PluginFailure(f"plugin {plugin.name} does not support contract version {p.CONTRACT_VERSION}")
    request = {
        "contractVersion": p.CONTRACT_VERSION,
        "keyId": plugin.key_id,
        "pluginConfig": dict(plugin.config),
    }
    where = f"plugin {plugin.name} {p.DESCRIBE_KEY}"
    response = call(plugin, p.DESCRIBE_KEY, request)
    if _field(response, "keyId", where) != plugin.key_id:
        raise PluginFailure(f"{where}: answered for another key id")
    spec = p.KEY_SPECS.get(_field(response, "keySpec", where))
    if spec is None:
        raise PluginFailure(printable(f"{where}: unsupported keySpec {str(response['keySpec'])[:40]!r}"))
    return spec


def _chain(response: Mapping[str, Any], where: str) -> list[x509.Certificate]:
    encoded = response.get("certificateChain")
    if not isinstance(encoded, list) or not encoded or len(encoded) > MAX_CHAIN:
        raise PluginFailure(f"{where}: certificateChain must list 1 to {MAX_CHAIN} certificates")
    chain = []
    for item in encoded:
        try:
            chain.append(x509.load_der_x509_certificate(base64.b64decode(str(item), validate=True)))
        except (binascii.Error, ValueError):
            raise PluginFailure(
                f"{where}: certificateChain holds something that is not a DER certificate"
            ) from None
    return chain


def sign_payload(plugin: Plugin, spec: p.KeySpec, payload: bytes) -> tuple[bytes, list[x509.Certificate]]:
    """generate-signature over `payload`: the signature (JOSE/COSE form) and the chain, both checked."""
    where = f"plugin {plugin.name} {p.GENERATE_SIGNATURE}"
    request = {
        "contractVersion": p.CONTRACT_VERSION,
        "keyId": plugin.key_id,
        "pluginConfig": dict(plugin.config),
        "keySpec": spec.name,
        "hashAlgorithm": spec.hash,
        "payload": base64.b64encode(payload).decode("ascii"),
    }
    response = call(plugin, p.GENERATE_SIGNATURE, request)
    if _field(response, "keyId", where) != plugin.key_id:
        raise PluginFailure(f"{where}: answered for another key id")
    algorithm = _field(response, "signingAlgorithm", where)
    if algorithm != spec.signing_algorithm:
        raise PluginFailure(
            printable(
                f"{where}: signingAlgorithm {algorithm[:40]!r} is not {spec.signing_algorithm} "
                f"for {spec.name}"
            )
        )
    try:
        signature = base64.b64decode(_field(response, "signature", where), validate=True)
    except (binascii.Error, ValueError):
        raise PluginFailure(f"{where}: the signature is not base64") from None
    chain = _chain(response, where)
    leaf_key = chain[0].public_key()
    if build.algorithm_for(leaf_key) != spec.alg:
        raise PluginFailure(f"{where}: the leaf certificate's key is not a {spec.name} key")
    check = signature
    if isinstance(leaf_key, ec.EllipticCurvePublicKey):
        width = (leaf_key.curve.key_size + 7) // 8
        if len(signature) != 2 * width:
            raise PluginFailure(
                f"{where}: an {spec.name} signature is {2 * width} bytes (r‖s), not {len(signature)}"
            )
        check = encode_dss_signature(
            int.from_bytes(signature[:width], "big"), int.from_bytes(signature[width:], "big")
        )
    digest = prehashed.digest_of(payload, spec.signing_algorithm)
    if not prehashed.verify_digest(leaf_key, check, digest, spec.signing_algorithm):
        raise PluginFailure(
            f"{where}: the signature does not verify with the leaf certificate "
            f"{chain[0].subject.rfc4514_string()} (wrong key, or the payload was changed)"
        )
    return signature, chain


async def plugin_envelope(plugin: Plugin, target: Descriptor, options: NotationSignOptions) -> SignedEnvelope:
    """An envelope for `target` signed by the plugin, as notation's SIGNATURE_GENERATOR.RAW workflow builds
    one: describe the key, sign the payload, check the signature and chain, then seal (and time-stamp)."""
    spec = describe(plugin)
    signing_time = signing_time_of(options)
    request = sign_request(target, options, signing_time)
    prepared = build.prepare(options.envelope, request, spec.alg)
    signature, chain = sign_payload(plugin, spec, prepared.signing_input)
    check_signing_material(chain[0].public_key(), chain, signing_time)
    der = [c.public_bytes(serialization.Encoding.DER) for c in chain]
    prepared = dataclasses.replace(prepared, chain=tuple(der))
    return await seal_envelope(prepared, signature, request, dataclasses.replace(options, chain=tuple(chain)))
