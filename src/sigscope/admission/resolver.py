"""Tag → digest through one long-lived registry client per host.

A webhook resolves the same few registries all day: one client each keeps its connections, tokens and
learned challenges for the life of the process instead of paying them per review.
"""

from __future__ import annotations

import asyncio

from sigscope.oci.client import RegistryClient, RegistryOptions
from sigscope.oci.reference import ImageReference

# Registries one webhook talks to; past this, an image naming yet another host is resolved by a client
# used once (a hostile pod spec naming a thousand hosts must not hold a thousand connection pools).
MAX_CLIENTS = 64


class Registries:
    def __init__(self, options: RegistryOptions) -> None:
        self.options = options
        self._clients: dict[str, RegistryClient] = {}
        self._lock = asyncio.Lock()

    async def _client(self, registry: str) -> tuple[RegistryClient, bool]:
        """The host's client and whether it is kept (else the caller closes it)."""
        client = self._clients.get(registry)
        if client is not None:
            return client, True
        async with self._lock:
            client = self._clients.get(registry)
            if client is not None:
                return client, True
            client = RegistryClient(registry, self.options)
            await client.open()
            if len(self._clients) < MAX_CLIENTS:
                self._clients[registry] = client
                return client, True
            return client, False

    async def resolve(self, ref: ImageReference) -> str:
        """The digest `ref`'s tag points at now (a HEAD, or a GET where the registry hides the digest)."""
        client, kept = await self._client(ref.registry)
        try:
            descriptor = await client.head_manifest(ref.repository, ref.reference)
        finally:
            if not kept:
                await client.close()
        return descriptor.digest

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()
