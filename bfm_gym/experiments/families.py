"""Several models in one comparison: ``bfm-gym compare --model A --model B`` (or
:func:`compare_models`) runs one comparison per model, each in its own sub-folder and resumable
as usual, and puts their final aggregates side by side. Two uses:

* **adapters x families**: the same domain's FB and HILP models (``--model walker --model
  walker-hilp``), so "does latent adaptation help both families" reads off one table;
* **adapters across domains**: one model per domain and domain-prefixed tasks
  (``--model walker --model point_mass_maze --tasks walker-run,point_mass_maze-reach_top_left``).
  A task named with a domain prefix goes to the models of that domain only; a task without
  one goes to every model. Each model's tasks and options are checked before any cell runs.

Outputs in the ``--out`` folder::

    <label>/            the comparison of one model (report.md, aggregates.json, ...)
    families.json       {"models": {label: {model, family, domain, tasks}}, "adapters": {adapter:
                        {label: IQM and the chosen setting when tuned}}, "gains": {adapter:
                        {label or "all": median gain over zero-shot, each task's gain, tasks
                        improved}}}
    families.md         adapters x models: IQM of the score normalised by the zero-shot level
                        at the largest budget, with its 95 % bootstrap interval; then per model
                        the median over its tasks of the paired gain over the zero-shot z and
                        how many tasks improved, and an "all" column pooling every model's tasks
    families.png        that gain table drawn: a bar per model and adapter, a dot per task
"""

from __future__ import annotations

import inspect
import json
import os
import re
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bfm_gym.errors import UserError

if TYPE_CHECKING:
    from bfm_gym.experiments.compare import CompareResult

__all__ = ["compare_models", "model_labels", "route_tasks", "write_families_table"]


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


def route_tasks(tasks: str | Sequence[str], domains: Mapping[str, str]) -> dict[str, list[str]]:
    """Which tasks each model runs: ``domain-task`` goes to the models of that domain, a task
    without a domain prefix to every model.

    Args:
        tasks: Task names, comma-separated or a list (``"walker-run,reach_top_left"``).
        domains: ``{model: its domain}``.

    Returns:
        ``{model: [task, ...]}`` in the order given.

    Raises:
        UserError: A task prefixed by a domain that no model has, or a model left without a
            task (the message names it and how to give it one).

    Example:
        >>> route_tasks("walker-run,point_mass_maze-reach_top_left,stand",
        ...             {"walker": "walker", "maze": "point_mass_maze"})
        {'walker': ['walker-run', 'stand'], 'maze': ['point_mass_maze-reach_top_left', 'stand']}
    """
    from bfm_gym.envs import DOMAINS
    from bfm_gym.experiments.compare.spec import split_names

    known = sorted({*domains.values(), *DOMAINS}, key=len, reverse=True)  # longest prefix first
    routed: dict[str, list[str]] = {model: [] for model in domains}
    for task in split_names(tasks):
        prefix = next((d for d in known if task.startswith(f"{d}-")), None)
        takers = [m for m, d in domains.items() if prefix is None or d == prefix]
        if not takers:
            have = ", ".join(f"{m} ({d})" for m, d in domains.items())
            raise UserError(f"Task {task!r} is a {prefix} task, but no --model is of domain {prefix} "
                            f"(models: {have}); add a {prefix} model or drop the task.")
        for model in takers:
            routed[model].append(task)
    for model, got in routed.items():
        if not got:
            raise UserError(f"--model {model} (domain {domains[model]}) gets no task: every task names "
                            f"another domain; add {domains[model]}-<task> or a task without a prefix.")
    return routed


def _route_oracle(oracle: Mapping[str, float] | None, domain: str, tasks: list[str]) -> dict[str, float]:
    """The ``oracle`` entries that name one of ``tasks`` of ``domain``."""
    from bfm_gym.envs import task_name

    mine = {task_name(domain, t) for t in tasks}
    return {k: v for k, v in (oracle or {}).items() if task_name(domain, k) in mine}


def compare_models(models: Sequence[str | os.PathLike[str]], tasks: str | Sequence[str],
                   adapters: str | Sequence[str], *, out: str | os.PathLike[str],
                   **options: Any) -> dict[str, CompareResult]:
    """Runs :func:`~bfm_gym.experiments.compare.compare` for each model into ``out/<label>``,
    then writes ``families.md``/``families.json`` (see the module docstring).

    Every model's plan (its tasks, adapters, configs, budgets) is checked before the first
    cell of any model runs, so a mistake in the last model does not surface after hours of
    work on the first.

    Args:
        models: Shipped names or model folders, each once.
        tasks: Tasks; ``domain-task`` goes to that domain's models only (:func:`route_tasks`).
        adapters: Adapters, run on every model.
        out: Parent folder; each model's comparison goes to ``out/<label>`` (resumable).
        **options: The other arguments of ``compare`` (``seeds``, ``episodes``, ``workers``,
            ``config``, ``oracle``, ``tune``...), the same for every model; ``oracle`` entries
            go to the model whose task they name.

    Returns:
        ``{label: CompareResult}`` in the order of ``models``.

    Raises:
        ValueError: Bad input, before any cell runs (the message names the model).
    """
    import bfm_gym
    from bfm_gym.experiments.compare import compare
    from bfm_gym.experiments.compare.spec import plan

    names = [os.fspath(m) for m in models]
    labels = model_labels(names)
    domains: dict[str, str] = {}
    for name in names:
        domain = bfm_gym.load(name).metadata.domain
        if domain is None:
            raise UserError(f"Model {name!r} records no domain; compare needs a model trained on a domain.")
        domains[name] = domain
    routed = route_tasks(tasks, domains)
    oracle = options.pop("oracle", None)
    oracles = {n: _route_oracle(oracle, domains[n], routed[n]) for n in names}
    unclaimed = set(oracle or {}) - {k for mine in oracles.values() for k in mine}
    if unclaimed:
        raise UserError(f"--oracle for {', '.join(sorted(unclaimed))}, which no model "
                        "compares; name a compared task (with its domain prefix).")
    planned = set(inspect.signature(plan).parameters) - {"model", "tasks", "adapters"}
    for name in names:  # every check first
        try:
            plan(name, routed[name], adapters, oracle=oracles[name],
                 **{k: v for k, v in options.items() if k in planned})
        except ValueError as exc:
            raise UserError(f"--model {name}: {exc}") from exc
    results: dict[str, CompareResult] = {}
    for name in names:
        label = labels[name]
        results[label] = compare(name, routed[name], adapters, out=Path(out) / label,
                                 oracle=oracles[name], **options)
    write_families_table(out, labels)
    return results


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


def _gains(aggregates: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per adapter: the median over tasks of the paired gain over the zero-shot z (mean
    difference / zero-shot level), each task's gain, and how many tasks went up (and with the
    interval above 0)."""
    paired, levels = aggregates.get("paired_vs_zero_shot"), aggregates.get("zero_shot") or {}
    if not paired:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for adapter, per_task in paired.items():
        gains: dict[str, float] = {}
        up, sure = 0, 0
        for task, p in per_task.items():
            level = (levels.get(task) or {}).get("level")
            if not p.get("pairs") or p.get("mean_difference") is None:
                continue
            up += p["mean_difference"] > 0
            sure += p["low"] is not None and p["low"] > 0
            if level and level > 0:
                gains[task] = round(p["mean_difference"] / level, 4)
        out[adapter] = {"median_gain": round(statistics.median(gains.values()), 4) if gains else None,
                        "tasks_up": int(up), "tasks_up_ci": int(sure), "tasks": len(per_task),
                        "per_task": gains}
    return out


def _pooled_gains(gains: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One adapter's gains of every model pooled: the median over all their tasks and the
    summed task counts (the "all" column of a comparison across domains)."""
    every = [g for cell in gains.values() for g in cell["per_task"].values()]
    return {"median_gain": round(statistics.median(every), 4) if every else None,
            "tasks_up": sum(c["tasks_up"] for c in gains.values()),
            "tasks_up_ci": sum(c["tasks_up_ci"] for c in gains.values()),
            "tasks": sum(c["tasks"] for c in gains.values()),
            "per_task": {f"{label}/{t}": g for label, c in gains.items() for t, g in c["per_task"].items()}}


def _plot_gains(path: Path, gains: dict[str, dict[str, Any]], names: list[str]) -> None:
    """Grouped bars: per model (x) and adapter (colour) the median paired gain over the
    zero-shot z, in %, with each task's gain as a dot on its bar."""
    from bfm_gym.utils.plots import pyplot, save_figure

    adapters = [a for a in gains if a != "zero-shot"] or list(gains)
    width = 0.8 / len(adapters)
    fig, ax = pyplot().subplots(figsize=(max(6.0, 1.6 * len(names) + 2), 4.2))
    for i, adapter in enumerate(adapters):
        xs = [k + (i - (len(adapters) - 1) / 2) * width for k in range(len(names))]
        cells = [gains[adapter].get(n) or {} for n in names]
        medians = [100 * (c.get("median_gain") or 0.0) for c in cells]
        ax.bar(xs, medians, width * 0.9, label=adapter, alpha=0.75)
        for x, c in zip(xs, cells, strict=True):
            dots = [100 * g for g in (c.get("per_task") or {}).values()]
            ax.scatter([x] * len(dots), dots, s=12, color="black", zorder=3)
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_xticks(range(len(names)), names)
    ax.set_ylabel("gain over the zero-shot z (%)")
    ax.set_title("Median paired gain per model (bars) and each task's gain (dots)")
    ax.legend(fontsize=8, ncol=min(4, len(adapters)))
    save_figure(fig, path)


def _gain_cell(g: dict[str, Any] | None) -> str:
    if not g:
        return "-"
    median = "n/a" if g["median_gain"] is None else f"{100 * g['median_gain']:+.1f} %"
    return f"{median}, {g['tasks_up']}/{g['tasks']} up ({g['tasks_up_ci']} with CI > 0)"


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
    gains: dict[str, dict[str, Any]] = {}
    budgets: dict[str, Any] = {}
    models: dict[str, dict[str, Any]] = {}
    for model, label in labels.items():
        aggregates = json.loads((out / label / "aggregates.json").read_text())
        try:
            spec = json.loads((out / label / "compare.json").read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            spec = {}
        models[label] = {"model": model, "family": _family(model), "domain": spec.get("domain"),
                         "tasks": spec.get("tasks")}
        final = aggregates["checkpoints"][-1]
        budgets[label] = final.get("episodes", final.get("budget"))
        chosen = aggregates.get("selected_settings") or {}
        for adapter, row in final["adapters"].items():
            table.setdefault(adapter, {})[label] = {**row["zero_shot"]["iqm"], "setting": chosen.get(adapter)}
        for adapter, g in _gains(aggregates).items():
            gains.setdefault(adapter, {})[label] = g
    names = list(labels.values())
    if len(names) > 1:
        for cells in gains.values():
            cells["all"] = _pooled_gains({n: cells[n] for n in names if n in cells})
    write_json_atomic(out / "families.json", {"models": models, "budget": budgets, "adapters": table,
                                              "gains": gains})
    head = " | ".join(f"{n} ({str(models[n]['family'] or '?').removeprefix('bfm_gym.')})" for n in names)
    lines = ["# Adapters x models", "",
             "IQM over tasks and seeds of the return divided by the zero-shot level, at the largest "
             "budget, with its 95 % stratified-bootstrap interval (each column is the `report.md` of "
             "its sub-folder); a tuned adapter shows the setting chosen for that model.", "",
             f"| adapter | {head} |", "|---" * (len(names) + 1) + "|"]
    for adapter, cells in table.items():
        lines.append(f"| {adapter} | " + " | ".join(_cell(cells.get(n)) for n in names) + " |")
    lines += ["", "n/a: no score (a zero-shot level of 0 leaves the ratio undefined)."]
    if gains:
        cols = names + (["all"] if len(names) > 1 else [])
        lines += ["", "## Gain over the zero-shot z, per model", "",
                  "Median over the model's tasks of the paired gain at the largest budget (last "
                  "evaluation point minus the zero-shot z's return from the same start states, "
                  "divided by the task's zero-shot level), and how many tasks went up (mean "
                  "difference > 0; in brackets, with the 95 % interval above 0)"
                  + ("; `all` pools every model's tasks" if len(names) > 1 else "")
                  + ". `families.png` draws it, each task a dot.", "",
                  f"| adapter | {' | '.join(cols)} |", "|---" * (len(cols) + 1) + "|"]
        lines += [f"| {a} | " + " | ".join(_gain_cell(cells.get(n)) for n in cols) + " |"
                  for a, cells in gains.items()]
        _plot_gains(out / "families.png", gains, names)
    return write_text_atomic(out / "families.md", "\n".join(lines) + "\n")
