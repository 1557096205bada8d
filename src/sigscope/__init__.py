"""sigscope: see, verify and enforce who signed what."""

__version__ = "0.1.0"
