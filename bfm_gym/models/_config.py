"""What the families' config dataclasses share: JSON round trip (``to_dict`` / ``from_dict``,
unknown keys named with the closest field), ``replace``, and the preset domain and size
checks. :class:`FamilyConfig` has no fields, so a subclass's field order (and so the key
order of its ``config.json``) is its own.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

__all__ = ["DOMAINS", "PRESET_SIZES", "FamilyConfig"]

DOMAINS: tuple[str, ...] = ("walker", "cheetah", "quadruped", "point_mass_maze")
"""The built-in domains. Presets take any registered domain (``bfm_gym.envs.DOMAINS``, plugins'
included); each domain's settings for a family live on its record (``Domain.presets``)."""

PRESET_SIZES: tuple[str, ...] = ("paper", "cpu", "tiny")
"""Sizes the presets know."""

_DOMAIN_ALIASES = {
    "pointmass": "point_mass_maze",
    "point_mass": "point_mass_maze",
    "maze": "point_mass_maze",
}

_C = TypeVar("_C", bound="FamilyConfig")


def _closest(name: str, valid: Iterable[str]) -> str:
    """A ``"; did you mean 'x'?"`` hint for a misspelt name, or ``""`` when nothing is close."""
    match = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.5)
    return f"; did you mean {match[0]!r}?" if match else ""


class FamilyConfig:
    """Base of :class:`~bfm_gym.models.fb.FBConfig` and :class:`~bfm_gym.models.hilp.HILPConfig`
    (frozen keyword-only dataclasses).

    Example:
        >>> from bfm_gym.models.hilp import HILPConfig
        >>> cfg = HILPConfig.preset("walker", "tiny")
        >>> HILPConfig.from_dict(cfg.to_dict()) == cfg, cfg.replace(z_dim=4).z_dim
        (True, 4)
    """

    _family: str = ""
    """The family's name in preset messages (``"FB"``)."""

    def to_dict(self) -> dict[str, Any]:
        """All fields as a JSON-safe dict (the inverse of :meth:`from_dict`)."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls: type[_C], data: Mapping[str, Any]) -> _C:
        """Build a config from a mapping, rejecting unknown keys.

        Args:
            data: Field name -> value. Missing fields take their defaults; values are checked
                against the field types (command-line text, ``--set k=v``, is parsed).

        Raises:
            ValueError: A key is not a field (the message names the closest field), or a value
                fails validation.
        """
        name = cls.__name__
        if not isinstance(data, Mapping):
            raise ValueError(
                f"{name}.from_dict needs a mapping of field -> value, got {type(data).__name__}"
            )
        names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        unknown = [k for k in data if k not in names]
        if unknown:
            key = unknown[0]
            raise ValueError(
                f"unknown {name} field {key!r}{_closest(str(key), names)} (valid fields: {', '.join(names)})"
            )
        from bfm_gym.config import coerce_fields  # values checked against the field types

        return cls(**coerce_fields(cls, data))

    @classmethod
    def saved_as_current(cls, data: Any) -> Any:
        """A config saved by a run or checkpoint, as this version writes it: fields added since
        are at their defaults. What :meth:`from_dict` refuses (unknown keys, bad values, not a
        mapping) comes back unchanged, so a comparison with the current config names it."""
        try:
            return cls.from_dict(data).to_dict()
        except (TypeError, ValueError):
            return data

    def replace(self: _C, **changes: Any) -> _C:
        """A copy with some fields changed (validated like :meth:`from_dict`)."""
        return type(self).from_dict({**self.to_dict(), **changes})

    @classmethod
    def _preset_domain(cls, domain: str, size: str) -> str:
        """``domain`` with its alias resolved, after checking it and ``size`` are known."""
        from bfm_gym.envs.domains import DOMAINS as REGISTERED

        domain = _DOMAIN_ALIASES.get(domain, domain)
        if domain not in REGISTERED:
            known = sorted(REGISTERED)
            raise ValueError(
                f"no {cls._family} preset for domain {domain!r}{_closest(domain, known)} (known: {', '.join(known)})"
            )
        if size not in PRESET_SIZES:
            raise ValueError(
                f"unknown preset size {size!r}{_closest(str(size), PRESET_SIZES)} (known: {', '.join(PRESET_SIZES)})"
            )
        return domain

    @classmethod
    def _domain_values(cls, domain: str, size: str) -> dict[str, Any]:
        """What the registered ``domain`` sets for this family's ``size`` preset
        (``Domain.presets``; the family's name in lower case is the key)."""
        from bfm_gym.envs.domains import get_domain

        return get_domain(domain).preset_values(cls._family.lower(), size)
