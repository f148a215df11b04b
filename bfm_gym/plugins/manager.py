"""Plugin loading and the registries filled by the hooks.

Loading (done once, lazily, on first use of a registry):

1. the built-in plugin (:mod:`bfm_gym.builtin_plugin`);
2. every entry point of the group ``bfm_gym``, each loaded on its own: one that
   fails to import is reported (a warning, and ``bfm-gym plugins``) and the others
   keep working. ``BFM_GYM_LOAD_PLUGINS`` (comma-separated entry-point or
   distribution names; empty = none) limits which load; ``BFM_GYM_STRICT_PLUGINS=1``
   turns failures into errors.

Each hook implementation is then called on its own with a ``register`` callback
that records which plugin registered what; a hook that raises is reported like a
failed import. Hooks run in load order: the built-in plugin first, then entry points
sorted by name. When a plugin registers a name another plugin already registered, the
later registration is dropped with a warning naming both plugins (also listed under
its ``errors`` by ``bfm-gym plugins``); everything else keeps working.
``BFM_GYM_STRICT_PLUGINS=1`` makes that an error too.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import logging
import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from bfm_gym.errors import UserError
from bfm_gym.plugins import hookspecs

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "bfm_gym"
BUILTIN = "bfm_gym.builtin_plugin"

pm = pluggy.PluginManager("bfm_gym")
pm.add_hookspecs(hookspecs)


class PluginError(UserError, RuntimeError):
    """A plugin could not be loaded, a hook failed, or two plugins clash."""


@dataclass
class PluginInfo:
    """What ``bfm-gym plugins`` shows about one plugin."""

    name: str
    version: str | None = None
    module: str | None = None
    hooks: list[str] = field(default_factory=list)
    registered: dict[str, list[str]] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


@dataclass
class Registries:
    """Everything plugins registered, with the plugin that registered each name."""

    adapters: dict[str, tuple[Any, str]] = field(default_factory=dict)
    models: dict[str, tuple[Any, str]] = field(default_factory=dict)
    families: dict[str, tuple[Any, str]] = field(default_factory=dict)
    tasks: dict[tuple[str, str], tuple[Any, str]] = field(default_factory=dict)
    domains: dict[str, tuple[Any, str]] = field(default_factory=dict)
    agents: dict[str, tuple[Any, str]] = field(default_factory=dict)


_SINGULAR = {"families": "family"}

_state: dict[str, Any] = {"loaded": False, "registries": None, "plugins": {}}


def _strict() -> bool:
    return os.environ.get("BFM_GYM_STRICT_PLUGINS", "") not in ("", "0")


def _report(info: PluginInfo, message: str) -> None:
    info.errors.append(message)
    if _strict():
        raise PluginError(f"plugin {info.name!r}: {message}")
    warnings.warn(f"bfm_gym plugin {info.name!r} disabled: {message}", stacklevel=3)


def _allowed() -> set[str] | None:
    value = os.environ.get("BFM_GYM_LOAD_PLUGINS")
    if value is None:
        return None
    return {v.strip() for v in value.split(",") if v.strip()}


def _load_entry_points(plugins: dict[str, PluginInfo]) -> None:
    allowed = _allowed()
    for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (e.name, e.value)):
        dist = getattr(ep, "dist", None)
        dist_name = dist.metadata["Name"] if dist is not None else None
        if allowed is not None and ep.name not in allowed and dist_name not in allowed:
            continue
        info = PluginInfo(name=ep.name, version=dist.version if dist is not None else None,
                          module=ep.value)
        plugins[ep.name] = info
        if pm.has_plugin(ep.name):
            continue
        try:
            obj = ep.load()
            pm.register(obj, name=ep.name)
        except Exception as exc:  # a broken plugin must not take the host down
            _report(info, f"failed to load ({type(exc).__name__}: {exc})")


def load_plugins() -> Registries:
    """Loads plugins (once) and fills the registries; returns them."""
    if _state["loaded"]:
        return _state["registries"]
    _state["loaded"] = True  # set first: hooks may look registries up while registering
    plugins: dict[str, PluginInfo] = {}
    from importlib import import_module

    from bfm_gym._version import __version__

    if not pm.has_plugin("bfm_gym"):
        pm.register(import_module(BUILTIN), name="bfm_gym")
    plugins["bfm_gym"] = PluginInfo(name="bfm_gym", version=__version__, module=BUILTIN)
    if not getattr(sys, "_called_from_test", False) or os.environ.get("BFM_GYM_LOAD_PLUGINS") is not None:
        _load_entry_points(plugins)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        _state["loaded"] = False
        raise PluginError(f"a plugin implements an unknown hook: {exc}") from exc
    registries = Registries()
    _state["registries"] = registries
    _state["plugins"] = plugins
    try:
        _call_hooks(registries, plugins)
    except PluginError:
        _state["loaded"] = False  # a later call raises the same clear error again
        raise
    for callback in _after_load:
        callback(registries)
    return registries


_after_load: list[Callable[[Registries], None]] = []


def on_plugins_loaded(callback: Callable[[Registries], None]) -> None:
    """Calls ``callback(registries)`` each time plugins have loaded (now, if they already have).

    ``import bfm_gym`` uses it to give plugin domains their Gymnasium ids, so this module
    imports nothing of the packages it serves."""
    _after_load.append(callback)
    if _state["loaded"] and _state["registries"] is not None:
        callback(_state["registries"])


def _call_hooks(registries: Registries, plugins: dict[str, PluginInfo]) -> None:
    def recorder(kind: str, table: dict, plugin: str) -> Any:
        def register(*args: Any) -> None:
            key: Any
            if kind == "tasks":
                if len(args) not in (3, 4):
                    raise TypeError("register(domain, name, reward_fn[, description])")
                domain, name, fn = args[:3]
                description = args[3] if len(args) == 4 else ""
                key, value = (domain, name), (fn, description)
                label = f"{domain}/{name}"
            else:
                if len(args) != 2:
                    what = {"adapters": "adapter_class", "families": "Family(...)", "domains": "Domain(...)",
                            "agents": "agent_class"}.get(kind, "path")
                    raise TypeError(f"register(name, {what})")
                key, value = args
                label = str(key)
            if key in table and table[key][1] != plugin:
                message = (f"{_SINGULAR.get(kind, kind[:-1])} {label!r} is registered by both plugin "
                           f"{table[key][1]!r} and plugin {plugin!r}")
                fix = "uninstall one or leave one out with BFM_GYM_LOAD_PLUGINS"
                if _strict():
                    raise PluginError(f"{message}; {fix}.")
                plugins[plugin].errors.append(f"{message}: {plugin!r}'s {label!r} is ignored ({fix})")
                warnings.warn(f"bfm_gym: {message}; {plugin!r}'s {label!r} is ignored ({fix}).",
                              stacklevel=2)
                return
            table[key] = (value, plugin)
            plugins[plugin].registered.setdefault(kind, []).append(label)

        return register

    for hook_name, table in (("register_domains", registries.domains),
                             ("register_agents", registries.agents),
                             ("register_tasks", registries.tasks),
                             ("register_families", registries.families),
                             ("register_models", registries.models),
                             ("register_adapters", registries.adapters)):
        kind = hook_name.removeprefix("register_")
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            info = plugins.setdefault(impl.plugin_name, PluginInfo(name=impl.plugin_name))
            info.hooks.append(hook_name)
            try:
                impl.function(register=recorder(kind, table, impl.plugin_name))
            except PluginError:
                raise
            except Exception as exc:
                _report(info, f"hook {hook_name} raised {type(exc).__name__}: {exc}")
    for impl in pm.hook.register_commands.get_hookimpls():
        plugins.setdefault(impl.plugin_name, PluginInfo(name=impl.plugin_name)).hooks.append(
            "register_commands")


def add_plugin_commands(cli: Any) -> None:
    """Calls every plugin's ``register_commands(cli)``; a failing one is reported."""
    load_plugins()
    plugins: dict[str, PluginInfo] = _state["plugins"]
    for impl in pm.hook.register_commands.get_hookimpls():
        try:
            impl.function(cli=cli)
        except Exception as exc:
            _report(plugins.setdefault(impl.plugin_name, PluginInfo(name=impl.plugin_name)),
                    f"hook register_commands raised {type(exc).__name__}: {exc}")


def plugin_infos() -> list[PluginInfo]:
    """What each plugin is, implements and registered (after loading)."""
    load_plugins()
    return list(_state["plugins"].values())


def reset_plugins() -> None:
    """Forgets loaded plugins and registries (for tests)."""
    for name, _plugin in list(pm.list_name_plugin()):
        pm.unregister(name=name)
    _state.update(loaded=False, registries=None, plugins={})
