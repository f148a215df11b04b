"""The tuning budget of a comparison: every adapter gets the same small grid of settings
of one config field (by default its learning rate), every setting runs at the same
budget, and each adapter is reported at its best setting, named.

**Grids.** ``tune={"lr": [1e-4, 3e-4, 1e-3]}`` (``--tune lr=1e-4,3e-4,1e-3``) gives every
adapter that has a learning rate a grid over it: the first of :data:`LR_FIELDS` its
config has (``lola.lr``, ``rela.lr_z``, the SB3 plugin's ``learning_rate``), or the field
its class names in ``tune_field`` (a plugin's choice). ``"ADAPTER.KEY"`` gives one
adapter its own grid over any config field (``--tune opti.beta=0.1,1,10``), and wins
over ``lr`` for that adapter. A value written ``x0.3`` is that multiple of the field's
default, so ``--tune lr=x0.3,x1,x3`` gives every adapter the same three steps around its
own default learning rate (ReLA's 1e-5, LoLA's 0.01 and SB3's 3e-4 differ by three orders
of magnitude; one absolute grid would be fair to none). Adapters with nothing to tune (``zero-shot``; ``opti`` and
``cem`` have no learning rate) run their one setting, and the report says so. Grids
must all have the same number of settings (the equal tuning budget).

**Selection rule.** A setting's *selection score* is the area under its paired
evaluation curve, normalised: per cell, the curve's value at each evaluation budget
(its last evaluation point within it, divided by the task's zero-shot level over the
selection seeds; the raw return where that level is <= 0) is integrated over env steps
with the trapezoid rule and divided by the span (one point: its value); the score is the
mean over tasks of the mean over selection seeds. Each adapter takes its setting with
the highest score (ties: the first in grid order). The area rewards fast *and* lasting
gains, and with ``select_seeds`` the choice is made on seeds whose episodes and start
states are not those of the reported runs, so the reported numbers never took part in
the choice. Without ``select_seeds`` the choice is made on the reported seeds: the
chosen setting's reported score is then optimistic by the noise of picking the best of
``n`` (the same ``n`` for every tuned adapter; untuned adapters get no such lift).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from bfm_gym.errors import UserError

__all__ = ["LR_FIELDS", "SELECTION_RULE", "choose", "curve_area", "parse_tune", "resolve_grids",
           "setting_label", "variant_id"]

LR_FIELDS = ("lr", "lr_z", "learning_rate")
"""Config fields ``--tune lr=...`` tunes, the first an adapter's config has."""

SELECTION_RULE = ("highest area under the paired evaluation curve (value at each evaluation budget / zero-shot "
                  "level, trapezoid over env steps, divided by the span), mean over tasks of the mean over "
                  "selection seeds; ties: first in grid order")

_SAFE = re.compile(r"^[A-Za-z0-9_.+\-@=]+$")


def parse_tune(values: Sequence[str]) -> dict[str, list[str]]:
    """``["lr=1e-4,3e-4", "opti.beta=0.1,1"]`` -> ``{"lr": ["1e-4", "3e-4"], "opti.beta": [...]}``.

    Raises:
        UserError: An item without ``=``, an empty value, or a key given twice.
    """
    out: dict[str, list[str]] = {}
    for item in values:
        key, sep, raw = str(item).partition("=")
        key = key.strip()
        vals = [v.strip() for v in raw.split(",") if v.strip()]
        if not sep or not key or not vals:
            raise UserError(f"--tune expects lr=V1,V2,... or ADAPTER.KEY=V1,V2,... "
                            f"(e.g. --tune lr=1e-4,3e-4,1e-3); got {item!r}.")
        if key in out:
            raise UserError(f"--tune {key} is given twice; give its values once, comma-separated.")
        if len(set(vals)) != len(vals):
            raise UserError(f"--tune {key}: a value is listed twice ({raw}).")
        out[key] = vals
    return out


def _field_of(cls: Any, fields: Sequence[str]) -> str | None:
    named = getattr(cls, "tune_field", None)
    if isinstance(named, str) and named in fields:
        return named
    return next((f for f in LR_FIELDS if f in fields), None)


def resolve_grids(tune: Mapping[str, Sequence[Any]] | None, adapters: Sequence[str],
                  registry: Mapping[str, Any]) -> dict[str, tuple[str, list[Any]]]:
    """Adapter -> ``(config field, values)`` for every tuned adapter (values not yet typed).

    Raises:
        UserError: A grid for an adapter not compared, a field the adapter's config lacks,
            ``lr`` where no compared adapter has a learning rate, grids of unequal size.
    """
    import dataclasses

    if not tune:
        return {}
    if not isinstance(tune, Mapping):
        raise UserError(f"tune maps 'lr' or 'ADAPTER.KEY' to a list of values; got {tune!r}.")
    grids: dict[str, tuple[str, list[Any]]] = {}
    generic = None
    for key, values in tune.items():
        vals = [values] if isinstance(values, (str, int, float)) else list(values)
        if not vals:
            raise UserError(f"tune {key!r} has no values.")
        if key == "lr":
            generic = vals
            continue
        adapter, dot, field = str(key).partition(".")
        if not dot or not field:
            raise UserError(f"tune key {key!r}: use 'lr' (each adapter's learning rate) or ADAPTER.KEY "
                            "(e.g. opti.beta).")
        if adapter not in adapters:
            raise UserError(f"--tune for adapter {adapter!r}, which is not compared; adapters: {', '.join(adapters)}.")
        names = [f.name for f in dataclasses.fields(registry[adapter][0].config_class)]
        if field not in names:
            from bfm_gym.errors import closest_hint

            raise UserError(f"--tune {key}: {adapter}'s config has no field {field!r}{closest_hint(field, names)}; "
                            f"fields: {', '.join(names)}.")
        grids[adapter] = (field, _scaled(registry[adapter][0], field, vals, key))
    if generic is not None:
        found = False
        for adapter in adapters:
            names = [f.name for f in dataclasses.fields(registry[adapter][0].config_class)]
            field = _field_of(registry[adapter][0], names)
            if field is not None:
                found = True
                grids.setdefault(adapter, (field, _scaled(registry[adapter][0], field, list(generic), "lr")))
        if not found:
            raise UserError(f"--tune lr: none of {', '.join(adapters)} has a learning-rate field "
                            f"({', '.join(LR_FIELDS)}); tune another field with ADAPTER.KEY=V1,V2.")
    sizes = {a: len(v) for a, (_, v) in grids.items()}
    if len(set(sizes.values())) > 1:
        raise UserError("every tuned adapter gets the same number of settings (the equal tuning budget); got "
                        + ", ".join(f"{a}: {n}" for a, n in sizes.items()) + ". Give each grid as many values.")
    return grids


def _scaled(cls: Any, field: str, values: list[Any], key: str) -> list[Any]:
    """Values written ``x3`` (or ``x0.3``) are multiples of the field's default."""
    out = []
    for v in values:
        if isinstance(v, str) and v.strip().lower().startswith("x"):
            default = getattr(cls.config_class.from_dict(None), field)
            try:
                factor = float(v.strip()[1:])
            except ValueError:
                raise UserError(f"--tune {key}: {v!r} is not a multiple of the default; write e.g. x0.3 or x3.") from None
            if isinstance(default, bool) or not isinstance(default, (int, float)):
                raise UserError(f"--tune {key}: {v!r} scales the default of {cls.__name__}'s {field}, which is "
                                f"not a number ({default!r}); give the values themselves.")
            v = float(f"{factor * default:.6g}")
        out.append(v)
    return out


def _value_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def adapter_names(adapters: Sequence[str], aggregates: Mapping[str, Any]) -> dict[str, str]:
    """Adapter -> how every output names it: ``"lola (lr=0.001)"`` at its chosen setting
    (``aggregates["selected_settings"]``), the bare name when it was not tuned."""
    chosen = aggregates.get("selected_settings") or {}
    return {a: f"{a} ({chosen[a]})" if chosen.get(a) else a for a in adapters}


def setting_label(field: str, value: Any) -> str:
    """``"lr=0.001"``: how a setting is named in every output."""
    return f"{field}={_value_text(value)}"


def variant_id(adapter: str, field: str, value: Any) -> str:
    """Folder-safe id of an adapter at one setting: ``"lola@lr=0.001"``.

    Raises:
        UserError: The value cannot name a folder (e.g. contains ``/`` or a space).
    """
    vid = f"{adapter}@{setting_label(field, value)}"
    if not _SAFE.match(vid):
        raise UserError(f"--tune {adapter}.{field}: the value {value!r} cannot name a cell folder; "
                        "tune values must be numbers or plain words.")
    return vid


def curve_area(points: Sequence[tuple[float, float]]) -> float:
    """Area under a curve of ``(env_steps, value)`` points, divided by its span.

    Trapezoid rule over the finite points in order; one point gives its value, none NaN.
    """
    pts = [(float(x), float(y)) for x, y in points if np.isfinite(y)]
    if not pts:
        return float("nan")
    if len(pts) == 1 or pts[-1][0] == pts[0][0]:
        return float(np.mean([y for _, y in pts]))
    xs, ys = np.array([p[0] for p in pts]), np.array([p[1] for p in pts])
    return float(np.sum((ys[1:] + ys[:-1]) / 2 * np.diff(xs)) / (xs[-1] - xs[0]))


def choose(variants: Sequence[str], tasks: Sequence[str], seeds: Sequence[int],
           curve: Callable[[str, str, int], Sequence[tuple[float, float]]],
           level: Callable[[str], float | None]) -> tuple[str | None, dict[str, dict[str, Any]]]:
    """Picks the variant with the highest selection score (see the module docstring).

    Args:
        variants: One adapter's variant ids, in grid order.
        tasks, seeds: The cells to score them on (the selection seeds).
        curve: ``(variant, task, seed) -> [(env_steps, return), ...]``, the paired evaluation
            curve at the evaluation budgets.
        level: Task -> zero-shot level over the selection seeds (None or <= 0: raw returns).

    Returns:
        ``(chosen variant or None when no variant has a score, per variant
        {"selection_score", "per_task"})``.
    """
    scores: dict[str, dict[str, Any]] = {}
    for v in variants:
        per_task = {}
        for task in tasks:
            by = level(task)
            norm = by if by is not None and np.isfinite(by) and by > 0 else 1.0
            areas = [curve_area([(x, y / norm) for x, y in curve(v, task, s)]) for s in seeds]
            finite = [a for a in areas if np.isfinite(a)]
            per_task[task] = float(np.mean(finite)) if finite else float("nan")
        finite = [a for a in per_task.values() if np.isfinite(a)]
        scores[v] = {"selection_score": float(np.mean(finite)) if finite else float("nan"), "per_task": per_task}
    best, best_score = None, -np.inf
    for v in variants:  # strict > keeps the first of equal scores
        s = scores[v]["selection_score"]
        if np.isfinite(s) and s > best_score:
            best, best_score = v, s
    return best, scores
