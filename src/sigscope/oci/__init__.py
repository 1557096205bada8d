"""OCI references, registries and image layouts."""
