"""Scoring of a comparison: a cell's score at a budget, the zero-shot levels, the paired
differences to the zero-shot z, and the aggregates with their bootstrap intervals."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from bfm_gym.evaluation.aggregate import (
    bootstrap_replicates,
    performance_profile,
    probability_of_improvement,
    stratified_bootstrap,
)
from bfm_gym.experiments.compare.spec import CompareSpec, cell_name
from bfm_gym.experiments.compare.time_to_oracle import FRACTION, summarize_time_to_oracle, time_to_fraction
from bfm_gym.experiments.compare.tuning import SELECTION_RULE, choose
from bfm_gym.experiments.compare.unlearning import summarize_unlearning, unlearning
from bfm_gym.experiments.run_folder import cpu_kinds

__all__ = ["score", "select_settings"]


def _ratio(value: float, by: float | None) -> float:
    return float(value) / by if by is not None and math.isfinite(by) and by > 0 else float("nan")


def _seed_level(folder: Path, cell: str) -> float | None:
    """The zero-shot level a cell measured on its fixed start states (``summary.json``)."""
    try:
        zs = json.loads((folder / "cells" / cell / "summary.json").read_text()).get("zero_shot")
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return None if zs is None else float(zs)


def _levels(spec: CompareSpec, folder: Path,
            chosen: Mapping[str, str] | None = None) -> tuple[dict[str, float | None], dict[str, list[float]]]:
    """Per task: zero-shot level (mean over seeds) and the per-seed values."""
    chosen = chosen or {}
    per_seed: dict[str, dict[int, float]] = {t: {} for t in spec.tasks}
    for adapter, task, seed in spec.cells():
        if seed in per_seed[task]:
            continue
        zs = _seed_level(folder, cell_name(chosen.get(adapter, adapter), task, seed))
        if zs is not None:
            per_seed[task][seed] = zs
    if (not spec.eval_episodes and "zero-shot" in spec.adapters
            and not spec.configs.get("zero-shot", {}).get("online_labels")):
        # unpaired scoring: the zero-shot cells ran the same z for the whole budget, and their
        # mean return over every episode and seed is a less noisy level than a few episodes
        for task in spec.tasks:
            means: dict[int, float] = {}
            for seed in spec.seeds:
                path = folder / "cells" / cell_name("zero-shot", task, seed) / "records.jsonl"
                try:
                    returns = [json.loads(line)["return"] for line in path.read_text().splitlines() if line]
                except FileNotFoundError:
                    returns = []
                if returns:
                    means[seed] = float(np.mean(returns))
            if means:
                per_seed[task] = means
    levels = {t: (float(np.mean(list(v.values()))) if v else None) for t, v in per_seed.items()}
    return levels, {t: list(v.values()) for t, v in per_seed.items()}


def _score_at(records: list[dict[str, Any]], steps: int, labels: int,
              window: int = 1, evaluation: bool = False) -> dict[str, Any] | None:
    """The last episode that ended within ``steps`` env steps and ``labels`` labels; with
    ``window > 1`` its ``return`` is the mean over the last ``window`` such episodes.

    ``evaluation=True``: the last such episode followed by an evaluation point, with
    ``return`` its mean over the fixed start states (``window`` is not used); when no
    episode with an evaluation point ended within the budget, the evaluation of the
    adapter's policy before its first env step (kept on row 0), else None.
    """
    within: list[dict[str, Any]] = []
    for r in records:
        if r["env_steps"] <= steps and r["labels_used"] <= labels:
            within.append(r)
        else:
            break
    if evaluation:
        points = [r for r in within if "eval_return" in r]
        if points:
            return {**points[-1], "return": points[-1]["eval_return"]}
        if records and "initial_eval_return" in records[0]:
            return {"episode": -1, "env_steps": 0, "labels_used": 0, "return": records[0]["initial_eval_return"]}
        return None
    if not within:
        return None
    if window <= 1:
        return within[-1]
    return {**within[-1], "return": float(np.mean([r["return"] for r in within[-window:]]))}


def score(folder: Path, spec: CompareSpec, records: dict[str, list[dict[str, Any]]], ran: set[str],
          reps: int, window: int = 1, chosen: Mapping[str, str] | None = None,
          ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any],
                     list[dict[str, Any]], list[dict[str, Any]]]:
    """Scores every cell of ``spec`` from its ``records``; a tuned adapter is scored at its
    ``chosen`` variant (adapter -> variant id), every setting's cells stay in the rows.

    Returns:
        ``(rows, cells, aggregates, agg_rows, checkpoints)``: the rows of ``results.csv``,
        the entries of ``cells.json``, the contents of ``aggregates.json`` and
        ``aggregates.csv``, and the per-checkpoint scores the report plots.
    """
    chosen = dict(chosen or {})
    for adapter in spec.adapters:
        chosen.setdefault(adapter, adapter)
    levels, level_values = _levels(spec, folder, chosen)
    paired = spec.eval_episodes > 0
    oracle = {t: (spec.oracle[t], "--oracle") if t in spec.oracle else (levels[t], "zero-shot (dataset labels)")
              for t in spec.tasks}
    rows: list[dict[str, Any]] = []
    cells: list[dict[str, Any]] = []
    every = [(a, v, t, s) for a in spec.adapters for v in spec.variants(a) for t in spec.tasks
             for s in (*spec.seeds, *spec.select_seeds) if cell_name(v, t, s) in records]
    for adapter, variant, task, seed in every:
        name = cell_name(variant, task, seed)
        recs = records[name]
        zs, (orc, source) = levels[task], oracle[task]
        tags = {"setting": spec.setting(variant) or "",
                "selected": variant == chosen[adapter] and seed in spec.seeds}
        for r in recs:
            within = r["env_steps"] <= spec.budget_steps and r["labels_used"] <= spec.budget_labels
            rows.append({"adapter": adapter, **tags, "task": task, "seed": seed, "episode": r["episode"],
                         "env_steps": r["env_steps"], "sim_steps": r.get("sim_steps", 0),
                         "labels_used": r["labels_used"], "return": r["return"], "within_budget": within,
                         "zero_shot": zs, "oracle": orc, "oracle_source": source,
                         "score_zero_shot": _ratio(r["return"], zs), "score_oracle": _ratio(r["return"], orc),
                         "eval_return": r.get("eval_return"), "eval_std": r.get("eval_std"),
                         "eval_score_zero_shot": (_ratio(r["eval_return"], zs) if "eval_return" in r else None),
                         "wall_s": r.get("wall_s")})
        last = recs[-1] if recs else {"env_steps": 0, "labels_used": 0, "sim_steps": 0, "wall_s": 0.0}
        cells.append({"cell": name, "adapter": adapter, **tags, "task": task, "seed": seed,
                      "status": "ran" if name in ran else "reused", "episodes": len(recs),
                      "budget_steps": spec.budget_steps, "budget_labels": spec.budget_labels,
                      "env_steps": last["env_steps"], "sim_steps": last.get("sim_steps", 0),
                      "labels_used": last["labels_used"],
                      "over_budget_steps": max(0, last["env_steps"] - spec.budget_steps),
                      "eval_points": sum("eval_return" in r for r in recs),
                      "eval_env_steps": sum(r.get("eval_env_steps", 0) for r in recs),
                      "wall_s": last.get("wall_s"), "cpu_kinds": cpu_kinds(recs),
                      "config": spec.configs[variant]})

    # Scores at each budget checkpoint: cell -> score (NaN when no episode ended within it).
    checkpoints = []
    agg_rows: list[dict[str, Any]] = []
    for k in spec.checkpoints:
        steps = k * spec.episode_length
        entry: dict[str, Any] = {"episodes": k, "env_steps": steps, "adapters": {}}
        for adapter in spec.adapters:
            per_norm: dict[str, Any] = {}
            for norm in ("zero_shot", "oracle"):
                by_task: dict[str, list[float]] = {}
                for task in spec.tasks:
                    vals = []
                    for seed in spec.seeds:
                        r = _score_at(records[cell_name(chosen[adapter], task, seed)], steps, spec.budget_labels,
                                      window, paired)
                        by = levels[task] if norm == "zero_shot" else oracle[task][0]
                        vals.append(_ratio(r["return"], by) if r is not None else float("nan"))
                    by_task[task] = vals
                stats = {}
                for stat in ("iqm", "mean"):
                    iv = stratified_bootstrap(by_task, stat, reps=reps, seed=0)
                    stats[stat] = iv.to_dict()
                    agg_rows.append({"checkpoint_episodes": k, "env_steps": steps, "adapter": adapter,
                                     "normalisation": norm, "statistic": stat, **iv.to_dict()})
                per_norm[norm] = {"stats": stats, "scores": by_task}
            raw = {task: [(_score_at(records[cell_name(chosen[adapter], task, s)], steps, spec.budget_labels, window,
                                     paired) or {"return": float("nan")})["return"] for s in spec.seeds]
                   for task in spec.tasks}
            per_norm["return"] = raw
            entry["adapters"][adapter] = per_norm
        checkpoints.append(entry)

    final = checkpoints[-1]
    taus = _taus([v for a in spec.adapters for t in spec.tasks
                  for v in final["adapters"][a]["oracle"]["scores"][t]])
    profile = {"normalisation": "oracle", "checkpoint_episodes": spec.episodes, "tau": taus.tolist(),
               "adapters": {}}
    for adapter in spec.adapters:
        frac, lo, hi = performance_profile(final["adapters"][adapter]["oracle"]["scores"], taus, reps=reps)
        profile["adapters"][adapter] = {"fraction": frac.tolist(), "low": lo.tolist(), "high": hi.tolist()}

    aggregates = {
        "latent_vs_weights": _latent_vs_weights(spec, checkpoints, reps),
        "definitions": {
            "iqm": "mean of the middle 50% of runs (tasks x seeds pooled) = scipy.stats.trim_mean(x, 0.25)",
            "ci": f"95% percentile interval, stratified bootstrap ({reps} replicates; strata = tasks, "
                  "seeds resampled within each task)",
            "score_zero_shot": "return / zero-shot level of the task (mean over seeds)",
            "score_oracle": "return / oracle (--oracle, else the zero-shot return with dataset labels, "
                            "OpTI-BFM's oracle)",
            "checkpoint": (f"a cell's score at a budget of B env steps is its last evaluation point "
                           f"({spec.eval_episodes} episodes from fixed start states, z frozen, deterministic "
                           "policy) taken after an episode that ended within B env steps and the label cap "
                           "(NaN if none); evaluation episodes are not counted in the budget" if paired else
                           f"a cell's score at a budget of B env steps is the mean return of its last "
                           f"{window} training episode(s) that ended within B env steps and the label cap "
                           "(NaN if none)"),
        },
        "score_source": "evaluation" if paired else "training",
        "evaluation": ({"episodes_per_point": spec.eval_episodes, "eval_every": spec.eval_every,
                        "before_budgets": spec.eval_steps(), "counted_in_budget": False,
                        "start_states": "adapt.evaluation_seeds(seed, n): shared by every adapter of a seed "
                                        "and by the zero-shot level"} if paired else None),
        "paired_vs_zero_shot": _paired_vs_zero_shot(spec, folder, records, chosen) if paired else None,
        "selected_settings": {a: spec.setting(chosen[a]) for a in spec.adapters},
        "tuning": _tuning(spec, folder, records, chosen, reps) if spec.tune else None,
        "unlearning": _unlearning(spec, folder, records, chosen, reps) if paired else None,
        "time_to_oracle": _time_to_oracle(spec, records, chosen, oracle) if paired else None,
        "score_window": window,
        "budget": {"episodes": spec.episodes, "episode_length": spec.episode_length,
                   "budget_steps": spec.budget_steps, "budget_labels": spec.budget_labels},
        "zero_shot": {t: {"level": levels[t], "per_seed": level_values[t]} for t in spec.tasks},
        "oracle": {t: {"value": oracle[t][0], "source": oracle[t][1]} for t in spec.tasks},
        "checkpoints": [{"episodes": c["episodes"], "env_steps": c["env_steps"],
                         "adapters": {a: {n: c["adapters"][a][n]["stats"] for n in ("zero_shot", "oracle")}
                                      for a in spec.adapters}} for c in checkpoints],
        "performance_profile": profile,
    }
    return rows, cells, aggregates, agg_rows, checkpoints


def _paired_vs_zero_shot(spec: CompareSpec, folder: Path, records: dict[str, list[dict[str, Any]]],
                         chosen: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """Per adapter and task at the final budget: its last evaluation point minus the zero-shot
    z's return on the same start state, pooled over seeds x start states.

    ``mean_difference`` with a 95 % interval (bootstrap over the pooled pairs, 2000
    resamples, seed 0), ``better``/``worse``/``pairs``: how many pairs went up/down.
    """
    out: dict[str, dict[str, Any]] = {}
    for adapter in spec.adapters:
        out[adapter] = {}
        for task in spec.tasks:
            diffs: list[float] = []
            for seed in spec.seeds:
                name = cell_name(chosen[adapter], task, seed)
                point = _score_at(records[name], spec.budget_steps, spec.budget_labels, evaluation=True)
                try:
                    zs = json.loads((folder / "cells" / name / "summary.json").read_text()).get("zero_shot_returns")
                except (FileNotFoundError, json.JSONDecodeError):
                    zs = None
                if point is None or not zs:
                    continue
                n = min(len(zs), len(point["eval_returns"]))
                diffs += list(np.subtract(point["eval_returns"][:n], zs[:n]))
            if not diffs:
                out[adapter][task] = {"pairs": 0, "mean_difference": None, "low": None, "high": None,
                                      "better": 0, "worse": 0}
                continue
            d = np.asarray(diffs, dtype=np.float64)
            means = bootstrap_replicates({task: d}, "mean", reps=2000, seed=0)
            out[adapter][task] = {"pairs": int(d.size), "mean_difference": round(float(d.mean()), 4),
                                  "low": round(float(np.quantile(means, 0.025)), 4),
                                  "high": round(float(np.quantile(means, 0.975)), 4),
                                  "better": int((d > 0).sum()), "worse": int((d < 0).sum())}
    return out


def _latent_vs_weights(spec: CompareSpec, checkpoints: list[dict[str, Any]], reps: int) -> list[dict[str, Any]]:
    """Head to head of every latent adapter against every weight fine-tuning one, per budget.

    ``tasks_won``: tasks where the latent adapter's mean return over seeds is higher;
    ``p_improvement``: ``P(latent run > fine-tuning run)`` averaged over tasks, with a
    bootstrap CI (:func:`~bfm_gym.evaluation.aggregate.probability_of_improvement`).
    """
    latent = [a for a in spec.adapters if spec.acts.get(a) == "latent"]
    weights = [a for a in spec.adapters if spec.acts.get(a) == "env"]
    out = []
    for cp in checkpoints:
        for a in latent:
            for b in weights:
                ra, rb = cp["adapters"][a]["return"], cp["adapters"][b]["return"]
                won, compared = [], 0
                for task in spec.tasks:
                    xa, xb = np.asarray(ra[task], dtype=float), np.asarray(rb[task], dtype=float)
                    xa, xb = xa[np.isfinite(xa)], xb[np.isfinite(xb)]
                    if xa.size and xb.size:
                        compared += 1
                        if xa.mean() > xb.mean():
                            won.append(task)
                poi = probability_of_improvement(ra, rb, reps=reps, seed=0)
                out.append({"episodes": cp["episodes"], "env_steps": cp["env_steps"], "latent": a,
                            "weights": b, "tasks_won": won, "tasks_compared": compared,
                            "p_improvement": poi.to_dict()})
    return out


def _taus(values: list[float]) -> np.ndarray:
    finite = [v for v in values if math.isfinite(v)]
    top = max([*finite, 1.0]) * 1.05
    low = min([*finite, 0.0])
    return np.linspace(low, top, 101)



def _eval_curve(spec: CompareSpec, recs: list[dict[str, Any]]) -> list[tuple[int, float]]:
    """The paired evaluation curve at the evaluation budgets: ``(budget, return)`` of the
    last evaluation point within each (budgets without one are left out)."""
    out = []
    for b in spec.eval_steps():
        r = _score_at(recs, b, spec.budget_labels, evaluation=True)
        if r is not None:
            out.append((b, float(r["return"])))
    return out


def _selection(spec: CompareSpec, folder: Path,
               records: Mapping[str, list[dict[str, Any]]]) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    seeds = spec.selection_seeds()
    level: dict[str, float | None] = {}
    for task in spec.tasks:
        vals = []
        for seed in seeds:
            for adapter in spec.tune:
                v = _seed_level(folder, cell_name(spec.variants(adapter)[0], task, seed))
                if v is not None:
                    vals.append(v)
                    break
        level[task] = float(np.mean(vals)) if vals else None
    chosen: dict[str, str] = {}
    scores: dict[str, dict[str, Any]] = {}
    for adapter in spec.tune:
        variants = spec.variants(adapter)
        best, per = choose(variants, spec.tasks, seeds,
                           lambda v, t, s: _eval_curve(spec, records.get(cell_name(v, t, s), [])), level.get)
        chosen[adapter] = best if best is not None else variants[0]
        scores[adapter] = {"per_variant": per, "scored": best is not None, "levels": level}
    return chosen, scores


def select_settings(folder: Path, spec: CompareSpec, records: Mapping[str, list[dict[str, Any]]]) -> dict[str, str]:
    """Tuned adapter -> its chosen variant id, by the rule of :mod:`.tuning`, from the cells
    of every setting on the selection seeds. An adapter none of whose settings has an
    evaluation point keeps its first setting (the report says so)."""
    return _selection(spec, folder, records)[0]


def _tuning(spec: CompareSpec, folder: Path, records: Mapping[str, list[dict[str, Any]]],
            chosen: Mapping[str, str], reps: int) -> dict[str, Any]:
    """Every setting of every tuned adapter: its selection score, and, where it ran on the
    reported seeds, its final-budget IQM score / zero-shot level (kept, not used to choose)."""
    _, scores = _selection(spec, folder, records)
    levels = _levels(spec, folder, chosen)[0]
    out: dict[str, Any] = {"rule": SELECTION_RULE, "selection_seeds": list(spec.selection_seeds()),
                           "separate_selection_seeds": bool(spec.select_seeds), "adapters": {}}
    for adapter, info in spec.tune.items():
        settings = []
        for variant, value in zip(info["variants"], info["values"], strict=True):
            final: dict[str, list[float]] = {}
            for task in spec.tasks:
                vals = []
                for seed in spec.seeds:
                    recs = records.get(cell_name(variant, task, seed))
                    r = _score_at(recs, spec.budget_steps, spec.budget_labels, evaluation=True) if recs else None
                    vals.append(_ratio(r["return"], levels[task]) if r is not None else float("nan"))
                final[task] = vals
            ran_on_seeds = any(math.isfinite(v) for vs in final.values() for v in vs)
            sel = scores[adapter]["per_variant"][variant]
            drop = _unlearning(spec, folder, records, {adapter: variant}, reps, [adapter])[adapter]["all tasks"]
            settings.append({"setting": spec.setting(variant), "value": value, "variant": variant,
                             "chosen": variant == chosen[adapter],
                             "selection_score": sel["selection_score"], "selection_per_task": sel["per_task"],
                             "final_iqm_zero_shot": (stratified_bootstrap(final, "iqm", reps=reps, seed=0).to_dict()
                                                     if ran_on_seeds else None),
                             "unlearning": ({k: drop[k] for k in ("drop", "recovered", "never")}
                                            if ran_on_seeds else None)})
        out["adapters"][adapter] = {"key": info["key"], "values": info["values"],
                                    "chosen": spec.setting(chosen[adapter]), "chosen_variant": chosen[adapter],
                                    "scored": scores[adapter]["scored"], "settings": settings}
    out["untuned"] = [a for a in spec.adapters if a not in spec.tune]
    return out


def _eval_points(spec: CompareSpec, records: list[dict[str, Any]]) -> list[tuple[int, float]]:
    """``(env_steps, eval_return)`` of a cell's evaluation points within the budget, in order."""
    return [(r["env_steps"], r["eval_return"]) for r in records
            if "eval_return" in r and r["env_steps"] <= spec.budget_steps and r["labels_used"] <= spec.budget_labels]


def _time_to_oracle(spec: CompareSpec, records: Mapping[str, list[dict[str, Any]]],
                    chosen: Mapping[str, str], oracle: Mapping[str, tuple[float, str]]) -> dict[str, Any]:
    """Per adapter (at its ``chosen`` setting, on the reported seeds) and task: when its
    evaluation curve reaches and holds 90 % of the oracle (:mod:`.time_to_oracle`)."""
    out: dict[str, Any] = {"fraction": FRACTION, "adapters": {}}
    for adapter in spec.adapters:
        per_task = {}
        for task in spec.tasks:
            cells = []
            for seed in spec.seeds:
                points = _eval_points(spec, records.get(cell_name(chosen[adapter], task, seed), []))
                cells.append({"seed": seed, **time_to_fraction(points, oracle[task][0])})
            per_task[task] = cells
        out["adapters"][adapter] = summarize_time_to_oracle(per_task, spec.episode_length)
    return out


def _unlearning(spec: CompareSpec, folder: Path, records: Mapping[str, list[dict[str, Any]]],
                chosen: Mapping[str, str], reps: int, adapters: list[str] | None = None) -> dict[str, Any]:
    """Per adapter (at its ``chosen`` setting, on the reported seeds): drop below the zero-shot
    level and recovery time of its evaluation curve, per task and over all tasks (:mod:`.unlearning`)."""
    out: dict[str, Any] = {}
    for adapter in adapters or spec.adapters:
        per_task = {}
        for task in spec.tasks:
            cells = []
            for seed in spec.seeds:
                name = cell_name(chosen[adapter], task, seed)
                points = _eval_points(spec, records.get(name, []))
                cells.append({"seed": seed, **unlearning(points, _seed_level(folder, name))})
            per_task[task] = cells
        out[adapter] = summarize_unlearning(per_task, spec.episode_length, reps)
    return out
