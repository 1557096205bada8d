"""`sigscope signer serve`: a signing service that holds keys and signs digests for authenticated clients."""
