"""Adapters x model families: ``bfm-gym compare --model A --model B`` runs one comparison per
model (each in its own sub-folder, resumable as usual) and puts their final aggregates side by
side, so "does latent adaptation help both families" reads off one table.

Outputs in the ``--out`` folder::

    <label>/            the comparison of one model (report.md, aggregates.json, ...)
    families.json       {"models": {label: {model, family}}, "adapters": {adapter: {label: IQM and
                        the chosen setting when tuned}}}
    families.md         adapters x models: IQM of the score normalised by the zero-shot level
                        at the largest budget, with its 95 % bootstrap interval
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

__all__ = ["model_labels", "write_families_table"]


def model_labels(models: list[str] | tuple[str, ...]) -> dict[str, str]:
    """A short, unique, folder-safe label per model (``walker``, ``walker-hilp``, ``runs_x``...).

    Raises:
        ValueError: The same model is given twice.
    """
    if len(set(models)) != len(models):
        raise ValueError(f"--model lists a model twice ({', '.join(models)}); give each once.")
    labels: dict[str, str] = {}
    for model in models:
        base = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(os.fspath(model)).name or str(model)) or "model"
        label, k = base, 2
        while label in labels.values():
            label, k = f"{base}-{k}", k + 1
        labels[model] = label
    return labels


def _family(model: str) -> str | None:
    try:
        from bfm_gym.models.registry import read_format
        from bfm_gym.pretrained import resolve

        return read_format(resolve(model))
    except (ValueError, OSError):
        return None


def _cell(iqm: dict[str, Any] | None) -> str:
    if iqm is None:
        return "-"
    if iqm.get("value") is None:
        return "n/a"
    setting = f" ({iqm['setting']})" if iqm.get("setting") else ""
    return f"{iqm['value']:.3f} [{iqm['low']:.3f}, {iqm['high']:.3f}]{setting}"


def write_families_table(out: str | os.PathLike[str], labels: dict[str, str]) -> Path:
    """Reads each ``out/<label>/aggregates.json`` and writes ``families.json`` and ``families.md``.

    Args:
        out: The parent folder of the per-model comparisons.
        labels: ``{model: label}`` as :func:`model_labels` returns.

    Returns:
        The path of ``families.md``.
    """
    from bfm_gym.utils.io import write_json_atomic, write_text_atomic

    out = Path(out)
    table: dict[str, dict[str, Any]] = {}
    budgets: dict[str, Any] = {}
    for label in labels.values():
        aggregates = json.loads((out / label / "aggregates.json").read_text())
        final = aggregates["checkpoints"][-1]
        budgets[label] = final.get("episodes", final.get("budget"))
        chosen = aggregates.get("selected_settings") or {}
        for adapter, row in final["adapters"].items():
            table.setdefault(adapter, {})[label] = {**row["zero_shot"]["iqm"], "setting": chosen.get(adapter)}
    models = {label: {"model": model, "family": _family(model)} for model, label in labels.items()}
    write_json_atomic(out / "families.json", {"models": models, "budget": budgets, "adapters": table})
    names = list(labels.values())
    head = " | ".join(f"{n} ({str(models[n]['family'] or '?').removeprefix('bfm_gym.')})" for n in names)
    lines = ["# Adapters x model families", "",
             "IQM over tasks and seeds of the return divided by the zero-shot level, at the largest "
             "budget, with its 95 % stratified-bootstrap interval (each column is the `report.md` of "
             "its sub-folder); a tuned adapter shows the setting chosen for that model.", "",
             f"| adapter | {head} |", "|---" * (len(names) + 1) + "|"]
    for adapter, cells in table.items():
        lines.append(f"| {adapter} | " + " | ".join(_cell(cells.get(n)) for n in names) + " |")
    lines += ["", "n/a: no score (a zero-shot level of 0 leaves the ratio undefined)."]
    return write_text_atomic(out / "families.md", "\n".join(lines) + "\n")
