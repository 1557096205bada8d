"""The inventory as the source of an incremental re-scan's earlier results (scan.incremental.ReuseSource)."""

from __future__ import annotations

import asyncio
from datetime import datetime

from sigscope.scan.incremental import Recalled
from sigscope.store.convert import attachment_from_json, signature_from_json
from sigscope.store.inventory import Inventory
from sigscope.store.records import DecisionRow


class StoreReuse:
    def __init__(
        self, inventory: Inventory, trust_fingerprint: str, policy_version: str | None, now: datetime
    ):
        self.inventory = inventory
        self.trust_fingerprint = trust_fingerprint
        self.policy_version = policy_version or ""
        self.now = now

    async def previous(self, source: str, repository: str) -> dict[str, tuple[str, int]]:
        states = await asyncio.to_thread(self.inventory.digest_states, source, repository)
        return {
            digest: (state.sigset_fingerprint, state.image_id)
            for digest, state in states.items()
            # Other trust material or another policy could judge the same signatures otherwise; a
            # certificate a verdict relied on may have expired since.
            if state.trust_fingerprint == self.trust_fingerprint
            and state.policy_version == self.policy_version
            and (state.valid_until is None or state.valid_until > self.now)
        }

    async def recall(self, evidence_ids: list[int]) -> dict[int, Recalled]:
        found = await asyncio.to_thread(self.inventory.evidence, evidence_ids)
        out: dict[int, Recalled] = {}
        for evidence_id, (image, sigs) in found.items():
            out[evidence_id] = Recalled(
                evidence_id=evidence_id,
                signatures=[signature_from_json(s.row.record) for s in sigs if not s.row.attachment_digest],
                attachments=[attachment_from_json(a) for a in image.attachments],
                decision=_decision(image.decision),
                tags=tuple(image.tags),
            )
        return out


def _decision(row: DecisionRow | None) -> tuple[str, str | None, str, str] | None:
    if row is None or not row.decision or not row.policy_version:
        return None
    return row.decision, row.rule, row.reason or "", row.policy_version
