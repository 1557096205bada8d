"""SIZE arguments for limit flags: a byte count with an optional binary or decimal unit (64MiB, 2G, 4096)."""

from __future__ import annotations

import re

import click

_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "kb": 1000,
    "kib": 1 << 10,
    "m": 1000**2,
    "mb": 1000**2,
    "mib": 1 << 20,
    "g": 1000**3,
    "gb": 1000**3,
    "gib": 1 << 30,
    "t": 1000**4,
    "tb": 1000**4,
    "tib": 1 << 40,
}
_SIZE = re.compile(r"^\s*(\d+)\s*([a-z]*)\s*$")


def parse_size(text: str) -> int:
    """Bytes in `text`; ValueError naming what is wrong."""
    match = _SIZE.match(text.lower())
    if match is None or match.group(2) not in _UNITS:
        raise ValueError(f"{text!r} is not a size (a number of bytes, or e.g. 64MiB, 2GiB, 500MB)")
    return int(match.group(1)) * _UNITS[match.group(2)]


def size_callback(ctx: click.Context, param: click.Parameter, value: str | int) -> int:
    """A click callback turning a SIZE flag's text into bytes (a callback rather than a ParamType, whose
    typing differs across the click versions the project accepts)."""
    if isinstance(value, int):
        return value
    try:
        size = parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None
    if size <= 0:
        raise click.BadParameter("a limit must be at least one byte")
    return size
