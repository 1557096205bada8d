"""`sigscope signer install-notation-plugin`: put `notation-sigscope` where notation looks for plugins.

notation runs PLUGINS/NAME/notation-NAME and refuses symlinks (the spec: a regular file), so a small
launcher is written there, bound to the Python that runs sigscope now.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from sigscope.errors import UsageError
from sigscope.notation_plugin.protocol import PLUGIN_NAME


def plugin_root(plugin_dir: str | None = None) -> Path:
    """notation's plugin directory on Linux: $XDG_CONFIG_HOME/notation/plugins (~/.config when unset)."""
    if plugin_dir is not None:
        return Path(plugin_dir)
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "notation" / "plugins"


def launcher() -> str:
    return (
        f"#!{sys.executable}\n"
        "# notation-sigscope: the Notation plugin of sigscope (sigscope signer install-notation-plugin)\n"
        "from sigscope.notation_plugin.executable import main\n"
        "main()\n"
    )


def install(plugin_dir: str | None = None) -> Path:
    """Write the launcher; returns its path."""
    directory = plugin_root(plugin_dir) / PLUGIN_NAME
    target = directory / f"notation-{PLUGIN_NAME}"
    temporary = directory / f".notation-{PLUGIN_NAME}.tmp"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        temporary.write_text(launcher())
        temporary.chmod(0o755)
        temporary.replace(target)
    except OSError as exc:
        raise UsageError(f"cannot install the plugin into {directory}: {exc.strerror}") from None
    return target
