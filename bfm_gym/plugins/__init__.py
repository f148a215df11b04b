"""Plugin machinery (pluggy): hook specs, loading, registries.

Top-level ``plugins/`` holds plugin *packages*; this package is the machinery.
"""

from bfm_gym.plugins.hookspecs import hookimpl, hookspec
from bfm_gym.plugins.manager import (
    ENTRY_POINT_GROUP,
    PluginError,
    PluginInfo,
    add_plugin_commands,
    load_plugins,
    plugin_infos,
    pm,
    reset_plugins,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "PluginError",
    "PluginInfo",
    "add_plugin_commands",
    "hookimpl",
    "hookspec",
    "load_plugins",
    "plugin_infos",
    "pm",
    "reset_plugins",
]
