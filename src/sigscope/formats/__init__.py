"""Signature formats: bytes in, typed records out (pure: no I/O, no clocks of their own, no trust)."""
