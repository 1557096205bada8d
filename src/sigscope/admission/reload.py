"""The policy and the TLS certificate, reloaded when their files change, without a restart.

Kubernetes mounts a ConfigMap or Secret as a directory whose files are symlinks into `..data`, itself a
symlink swapped atomically to a new timestamped directory on update; the file's own inode and mtime may
not change at all. So a file is watched by polling a fingerprint: where its path leads (the resolved
path), that target's stat, and the stats of its directory's other entries (the policy's trust files sit
beside it in the same ConfigMap). Polling every few seconds costs microseconds and needs no inotify.

A change is validated before it takes effect: a policy that does not load, or a certificate that does not
match its key, is refused with a log line and a metric, and the last good one stays in force.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from collections.abc import Callable
from pathlib import Path

from sigscope.admission.engine import LoadPolicy, PolicyLike
from sigscope.admission.metrics import Metrics
from sigscope.errors import SigscopeError

log = logging.getLogger("sigscope.webhook")

MAX_DIR_ENTRIES = 256
Fingerprint = tuple[object, ...]


def fingerprint(path: Path) -> Fingerprint:
    """Changes whenever what reading `path` (or a file beside it) would give may have changed."""
    parts: list[object] = []
    try:
        target = os.path.realpath(path)
        st = os.stat(target)
        parts += [target, st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns]
    except OSError as exc:
        parts.append(f"error {exc.errno}")
    try:
        with os.scandir(path.parent) as entries:
            for n, entry in enumerate(sorted(entries, key=lambda e: e.name)):
                if n >= MAX_DIR_ENTRIES:
                    break
                try:
                    # follow_symlinks: the ConfigMap's `..data` swap shows here as a new target inode
                    st = entry.stat(follow_symlinks=True)
                    parts.append((entry.name, st.st_ino, st.st_size, st.st_mtime_ns))
                except OSError:
                    parts.append((entry.name, None))
    except OSError:
        pass
    return tuple(parts)


class PolicyHolder:
    """The policy in force; `reload()` swaps in a changed file only once it has loaded whole."""

    def __init__(self, path: Path, loader: LoadPolicy, metrics: Metrics) -> None:
        self.path = path
        self.loader = loader
        self.metrics = metrics
        self.policy: PolicyLike | None = None
        self._seen: Fingerprint | None = None

    def load(self) -> PolicyLike:
        """The first load: failures are the caller's (the server does not start)."""
        seen = fingerprint(self.path)
        policy = self.loader(self.path)
        self._install(policy, seen)
        return policy

    def _install(self, policy: PolicyLike, seen: Fingerprint) -> None:
        self.policy = policy
        self._seen = seen
        self.metrics.policy_loaded(policy.version)

    async def check(self) -> bool:
        """Reload if the files changed; True when a new policy took effect."""
        seen = fingerprint(self.path)
        if seen == self._seen:
            return False
        self._seen = seen  # a refused update is reported once, not at every poll
        try:
            policy = await asyncio.to_thread(self.loader, self.path)
        except SigscopeError as exc:
            errors = getattr(exc, "errors", None) or [str(exc)]
            self.metrics.policy_reloads.labels("failed").inc()
            current = self.policy.version if self.policy else "none"
            log.error(
                "policy %s refused, %s stays in force: %s", self.path, current, "; ".join(map(str, errors))
            )
            return False
        old = self.policy.version if self.policy else None
        self._install(policy, seen)
        self.metrics.policy_reloads.labels("ok").inc()
        if policy.version != old:
            log.info("policy %s reloaded: version %s (was %s)", self.path, policy.version, old)
        return policy.version != old


class TlsFiles:
    """A certificate and key loaded into one SSLContext, again when they change.

    `load_cert_chain` on the context a server already listens with replaces what the next handshake
    presents; connections already established keep theirs and are not dropped.
    """

    def __init__(self, context: ssl.SSLContext, cert: Path, key: Path, metrics: Metrics) -> None:
        self.context = context
        self.cert = cert
        self.key = key
        self.metrics = metrics
        self._seen = (fingerprint(cert), fingerprint(key))

    async def check(self) -> bool:
        seen = (fingerprint(self.cert), fingerprint(self.key))
        if seen == self._seen:
            return False
        self._seen = seen
        try:
            self._load()
        except (OSError, ssl.SSLError) as exc:
            # A Secret is updated as a whole, but a hand-rolled rotation may write the certificate before
            # its key: the mismatch is refused here and the next change (the key) is tried again.
            self.metrics.tls_reloads.labels("failed").inc()
            log.error("TLS certificate %s not reloaded, the previous one stays: %s", self.cert, exc)
            return False
        self.metrics.tls_reloads.labels("ok").inc()
        log.info("TLS certificate %s reloaded", self.cert)
        return True

    def _load(self) -> None:
        # load_cert_chain installs the certificate before it checks the key: on a mismatch the live context
        # would keep the new certificate with the old key, and every handshake would fail. So the pair is
        # tried on a scratch context first. (A Secret's files change together, by one symlink swap, so the
        # files do not change between the two loads; if they did, the next poll tries again.)
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(self.cert, self.key)
        self.context.load_cert_chain(self.cert, self.key)


async def watch(checks: list[Callable[[], object]], interval: float) -> None:
    """Run each check every `interval` seconds until cancelled; a check never ends the loop."""
    while True:
        await asyncio.sleep(interval)
        for check in checks:
            try:
                result = check()
                if asyncio.iscoroutine(result):
                    await result
            except Exception as exc:  # a watcher that dies silently leaves a stale policy in force
                log.error("reload check failed: %s: %s", type(exc).__name__, exc)
