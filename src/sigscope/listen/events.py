"""Registry notifications (distribution's `notifications.endpoints`): the envelope parsed into the
repositories whose signatures may have changed. Pure: bytes in, records out.

The envelope is `{"events": [...]}` with media type application/vnd.docker.distribution.events.v2+json
(v1+json from distribution 2.x);
each event has an `action` (push, pull, delete, mount), a `target` (repository, digest, tag, mediaType)
and a `request` (host, method). A pushed or deleted manifest (an image, an index, a cosign signature
manifest under its `sha256-….sig` tag, a Notary referrer) or a deleted tag changes what signs something in
its repository; blob uploads and pulls do not.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sigscope.oci import mediatypes
from sigscope.oci.reference import name_problem

ENVELOPE_TYPE = "application/vnd.docker.distribution.events.v2+json"
# distribution 2.x (Debian's docker-registry) names its envelope v1, v3 names it v2; the shape is the same.
ACCEPTED_TYPES = frozenset(
    {ENVELOPE_TYPE, "application/vnd.docker.distribution.events.v1+json", "application/json"}
)
MAX_EVENTS = 1024  # distribution sends a few per request; a sender with more is not a registry
ACTIONS = frozenset({"push", "delete"})
# Media types of manifests whose push changes an image or what signs it (blob pushes also come as events).
_MANIFEST_TYPES = mediatypes.INDEX_TYPES | mediatypes.MANIFEST_TYPES


class EnvelopeError(ValueError):
    """The body is not a notification envelope."""


@dataclass(frozen=True)
class RepositoryEvent:
    action: str
    repository: str
    digest: str
    tag: str
    media_type: str


def _text(value: Any, limit: int = 512) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _relevant(action: str, target: dict[str, Any]) -> bool:
    if action not in ACTIONS:
        return False
    media_type = _text(target.get("mediaType"))
    if action == "delete":
        return True  # a deleted manifest or tag (its media type is not sent); a deleted blob costs a re-scan
    return bool(_text(target.get("tag"))) or media_type in _MANIFEST_TYPES or "manifest" in media_type


def parse(body: bytes) -> tuple[list[RepositoryEvent], int]:
    """The relevant events of an envelope, and how many it carried in all. Events naming a repository the
    reference grammar refuses are dropped (they never become a request)."""
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise EnvelopeError("not JSON") from None
    if not isinstance(document, dict) or not isinstance(document.get("events"), list):
        raise EnvelopeError("not a notification envelope (no events list)")
    events = document["events"]
    if len(events) > MAX_EVENTS:
        raise EnvelopeError(f"{len(events)} events in one envelope, at most {MAX_EVENTS}")
    found: list[RepositoryEvent] = []
    for event in events:
        if not isinstance(event, dict) or not isinstance(event.get("target"), dict):
            continue
        action = _text(event.get("action"), 16)
        target = event["target"]
        repository = _text(target.get("repository"))
        if not _relevant(action, target) or not repository or name_problem("repository", repository):
            continue
        found.append(
            RepositoryEvent(
                action=action,
                repository=repository,
                digest=_text(target.get("digest"), 200),
                tag=_text(target.get("tag"), 200),
                media_type=_text(target.get("mediaType"), 200),
            )
        )
    return found, len(events)
