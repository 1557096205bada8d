"""Crawlers: registries and layouts in, signature records out."""
