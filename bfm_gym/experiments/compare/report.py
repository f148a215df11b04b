"""Plots and the Markdown report of a comparison (``bfm-gym compare``).

Writes into the comparison folder (each file atomically):

* ``curve_{task}.png``: per task, mean over seeds against env steps with a 95 % bootstrap
  band (seeds resampled), one line per adapter; the zero-shot level and the oracle as
  horizontal lines. With paired evaluation (the default) a cell's value at ``B`` env
  steps is its last evaluation point (mean over the fixed start states) taken within
  ``B``, drawn at the budgets where points are taken; otherwise the return of its last
  training episode that ended within ``B``. Adapters with lookahead steps, whose
  episodes cost more, are plotted at the steps they really spent.
* ``aggregate.png``: IQM with its stratified-bootstrap 95 % CI per adapter at the
  final budget, one panel per normalisation.
* ``profile.png``: performance profile at the final budget (fraction of runs with an
  oracle-normalised score above tau), with bands.
* ``report.md``: the command, budgets, tables and the pictures.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bfm_gym.utils.io import write_text_atomic
from bfm_gym.utils.plots import pyplot, save_figure

if TYPE_CHECKING:
    from bfm_gym.experiments.compare.spec import CompareSpec

__all__ = ["write_report"]


def _fmt(x: float | None, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return f"{x:.{digits}g}" if abs(x) < 1000 else f"{x:.0f}"


def _curves(folder: Path, spec: CompareSpec, rows: list[dict[str, Any]],
            aggregates: dict[str, Any], reps: int) -> dict[str, Path]:
    from bfm_gym.evaluation.aggregate import bootstrap_band

    plt = pyplot()
    paired = aggregates.get("score_source") == "evaluation"
    points = (np.asarray(spec.eval_steps()) if paired
              else np.arange(1, spec.episodes + 1) * spec.episode_length)
    key = "eval_return" if paired else "return"
    by_cell: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    names = _labels(spec, aggregates)
    for r in rows:
        if not r.get("selected", True):  # other settings and selection seeds: in results.csv only
            continue
        by_cell.setdefault((r["adapter"], r["task"], r["seed"]), []).append(r)
    files = {}
    for task in spec.tasks:
        fig, ax = plt.subplots(figsize=(6.5, 4))
        for adapter in spec.adapters:
            curves = np.full((len(spec.seeds), points.size), np.nan)
            for i, seed in enumerate(spec.seeds):
                recs = by_cell.get((adapter, task, seed), [])
                for j, budget in enumerate(points):
                    ok = [r for r in recs if r["env_steps"] <= budget and r["labels_used"] <= spec.budget_labels
                          and r.get(key) is not None]
                    if ok:
                        curves[i, j] = ok[-1][key]
            mean, lo, hi = bootstrap_band(curves, reps=reps)
            (line,) = ax.plot(points, mean, label=names[adapter], marker="o" if paired else None, ms=4)
            ax.fill_between(points, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
        zs = aggregates["zero_shot"][task]["level"]
        if zs is not None:
            ax.axhline(zs, color="gray", ls=":", label="zero-shot z" + (" (same start states)" if paired else ""))
        orc = aggregates["oracle"][task]
        if orc["source"] == "--oracle":
            ax.axhline(orc["value"], color="black", ls="--", label="oracle")
        ax.set_xlabel("env steps (lookahead steps included)")
        ax.set_ylabel(f"evaluation return ({spec.eval_episodes} fixed start states, z frozen)" if paired
                      else "training episode return")
        ax.set_title(f"{task}: mean over {len(spec.seeds)} seeds, 95% bootstrap CI", fontsize=10)
        ax.legend(fontsize=8)
        path = folder / f"curve_{task}.png"
        save_figure(fig, path)
        files[path.name] = path
    return files


def _labels(spec: CompareSpec, aggregates: dict[str, Any]) -> dict[str, str]:
    """Adapter -> how the report names it: ``"lola (lr=0.001)"`` at its chosen setting."""
    from bfm_gym.experiments.compare.tuning import adapter_names

    return adapter_names(spec.adapters, aggregates)


def _tuning_md(spec: CompareSpec, aggregates: dict[str, Any]) -> list[str]:
    tuning = aggregates.get("tuning")
    if not tuning:
        return ["## Tuning budget", "",
                "No tuning: every adapter ran at the configuration shown in the command (defaults unless "
                "`--set`). `--tune lr=V1,V2,V3` gives every adapter with a learning rate the same grid "
                "and reports each at its best setting.", ""]
    seeds = ", ".join(map(str, tuning["selection_seeds"]))
    md = ["## Tuning budget", "",
          f"Every tuned adapter ran each of its settings at the full budget; the setting used in every table "
          f"below is chosen by: {tuning['rule']}. "
          + (f"The choice was made on **separate selection seeds** ({seeds}), none of the reported seeds, "
             "so the reported numbers took no part in it." if tuning["separate_selection_seeds"] else
             f"The choice was made on the **reported seeds** ({seeds}): the chosen setting's scores are "
             "optimistic by picking the best of the grid (the same grid size for every tuned adapter). "
             "`--select-seeds` chooses on other seeds instead."),
          "", "| adapter | tuned field | settings | chosen | selection score of each setting | "
          "final IQM score / zero-shot of each setting (reported seeds) | drop below zero-shot, cells "
          "recovered, of each setting (reported seeds) |", "|---|---|---|---|---|---|---|"]

    def drop(u: dict[str, Any] | None) -> str:
        if u is None:
            return "not run"
        scored = u["recovered"] + u["never"]
        return f"{_fmt(u['drop']['mean'])}, {u['recovered']} of {scored}" if scored else "n/a"

    for adapter, info in tuning["adapters"].items():
        sel = ", ".join(f"{s['setting']}: {_fmt(s['selection_score'], 4)}" for s in info["settings"])
        fin = ", ".join(f"{s['setting']}: " + ("not run" if s["final_iqm_zero_shot"] is None else
                                             f"{_fmt(s['final_iqm_zero_shot']['value'])}") for s in info["settings"])
        dro = "; ".join(f"{s['setting']}: {drop(s.get('unlearning'))}" for s in info["settings"])
        chosen = f"**{info['chosen']}**" + ("" if info["scored"] else " (no setting had an evaluation point: first)")
        md.append(f"| {adapter} | `{info['key']}` | {len(info['settings'])} | {chosen} | {sel} | {fin} | {dro} |")
    for adapter in tuning["untuned"]:
        md.append(f"| {adapter} | none: no grid (`--tune lr` finds no learning-rate field in its config; "
                  f"`--tune {adapter}.KEY=...` gives one) | 1 | its configuration | | | |")
    md += ["", "Every setting's episodes are in `results.csv` (`setting`, `selected`), its cells in "
           "`cells.json`, its scores in `aggregates.json` (`tuning`).", ""]
    return md


def _unlearning_md(spec: CompareSpec, aggregates: dict[str, Any]) -> list[str]:
    un = aggregates.get("unlearning")
    if not un:
        return []
    names = _labels(spec, aggregates)
    multi = len(spec.seeds) > 1
    md = ["", "## Unlearning: drop below zero-shot and recovery", "",
          "From each cell's evaluation points against the zero-shot z on the same start states (that seed's "
          "level): **lowest** = min over the curve of evaluation return / zero-shot level, **drop** = "
          "max(0, 1 - lowest); **recovery** = env steps of budget until the first point at or after the "
          "lowest one that is back at >= the zero-shot level (0: never below it; never: not within the "
          "budget). " + ("Mean over seeds with a 95% bootstrap CI; recovery time over the cells that "
                         "recovered." if multi else "One seed: no intervals."), "",
          "| adapter | task | drop | lowest | recovered | recovery (env steps) | recovery (episodes) |",
          "|---|---|---|---|---|---|---|"]

    def iv(d: dict[str, Any]) -> str:
        if d["mean"] is None:
            return "n/a"
        return _fmt(d["mean"]) + (f" [{_fmt(d['low'])}, {_fmt(d['high'])}]" if d["n"] > 1 else "")

    for adapter in spec.adapters:
        for task in [*spec.tasks, "all tasks"]:
            u = un[adapter][task]
            if task == "all tasks" and len(spec.tasks) == 1:
                continue
            scored = u["recovered"] + u["never"]
            rec = f"{u['recovered']} of {scored}" if scored else "n/a"
            steps = iv(u["recovery_steps"]) if u["recovered"] else ("never" if scored else "n/a")
            eps = iv(u["recovery_episodes"]) if u["recovered"] else ("never" if scored else "n/a")
            md.append(f"| {names[adapter]} | {task} | {iv(u['drop'])} | {iv(u['lowest'])} | {rec} | {steps} | {eps} |")
    return md


def _time_to_oracle_md(spec: CompareSpec, aggregates: dict[str, Any]) -> list[str]:
    tt = aggregates.get("time_to_oracle")
    if not tt:
        return []
    names = _labels(spec, aggregates)
    pct = f"{100 * tt['fraction']:.0f} %"
    md = ["", f"## Time to {pct} of the oracle", "",
          f"From each cell's evaluation points against the task's oracle (section Normalisation): "
          f"**reached** = cells with a point at or above {pct} of it within the budget; **episodes to "
          f"reach** = budget (episodes' worth of env steps, lookahead included) of the first such point, "
          f"median [min, max] over the cells that reached it; **held** = cells whose curve stays at or "
          f"above it from some point to the end of the budget.", "",
          "| adapter | task | reached | episodes to reach | held to the end |", "|---|---|---|---|---|"]
    for adapter in spec.adapters:
        for task in spec.tasks:
            t = tt["adapters"][adapter][task]
            e = t["reached_episodes"]
            when = "n/a" if e is None else (_fmt(e["median"]) + (f" [{_fmt(e['min'])}, {_fmt(e['max'])}]"
                                                                   if t["reached"] > 1 else ""))
            md.append(f"| {names[adapter]} | {task} | {t['reached']} of {t['cells']} | {when} | "
                      f"{t['held']} of {t['cells']} |")
    return md


def _norms(aggregates: dict[str, Any]) -> list[tuple[str, str]]:
    """Normalisations to show: the oracle one only when some task has a given oracle."""
    given = any(o["source"] == "--oracle" for o in aggregates["oracle"].values())
    out = [("zero_shot", "return / zero-shot level" + ("" if given else " (= OpTI-BFM oracle)"))]
    if given:
        out.append(("oracle", "return / oracle"))
    return out


def _interval_plot(folder: Path, spec: CompareSpec, aggregates: dict[str, Any]) -> Path:
    plt = pyplot()
    final = aggregates["checkpoints"][-1]
    norms = _norms(aggregates)
    fig, axes = plt.subplots(1, len(norms), figsize=(4.5 * len(norms), 0.5 * len(spec.adapters) + 1.6),
                             squeeze=False)
    for ax, (norm, label) in zip(axes[0], norms, strict=True):
        for i, adapter in enumerate(spec.adapters):
            iv = final["adapters"][adapter][norm]["iqm"]
            if iv["value"] is None or not math.isfinite(iv["value"]):
                ax.text(0.02, i, "no score (normaliser missing or <= 0)", transform=ax.get_yaxis_transform(),
                        va="center", fontsize=8, color="gray")
                continue
            ax.plot([iv["low"], iv["high"]], [i, i], lw=6, alpha=0.5, solid_capstyle="butt")
            ax.plot([iv["value"]], [i], "k|", ms=14)
        ax.axvline(1.0, color="gray", ls=":")
        ax.set_yticks(range(len(spec.adapters)), [_labels(spec, aggregates)[a] for a in spec.adapters])
        ax.set_ylim(-0.7, len(spec.adapters) - 0.3)
        ax.set_xlabel(f"IQM of {label}")
    fig.suptitle(f"final budget ({final['env_steps']} env steps per cell), 95% stratified bootstrap CI",
                 fontsize=9)
    path = folder / "aggregate.png"
    save_figure(fig, path)
    return path


def _profile_plot(folder: Path, spec: CompareSpec, aggregates: dict[str, Any]) -> Path:
    plt = pyplot()
    prof = aggregates["performance_profile"]
    tau = np.asarray(prof["tau"])
    fig, ax = plt.subplots(figsize=(6, 4))
    for adapter in spec.adapters:
        p = prof["adapters"][adapter]
        frac = np.asarray(p["fraction"], dtype=float)
        (line,) = ax.plot(tau, frac, label=_labels(spec, aggregates)[adapter])
        ax.fill_between(tau, np.asarray(p["low"], float), np.asarray(p["high"], float),
                        color=line.get_color(), alpha=0.2, lw=0)
    ax.set_xlabel(r"oracle-normalised score $\tau$")
    ax.set_ylabel(r"fraction of runs with score > $\tau$")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title("performance profile at the final budget")
    ax.legend(fontsize=8)
    path = folder / "profile.png"
    save_figure(fig, path)
    return path


def _scoring_md(spec: CompareSpec, cells: list[dict[str, Any]], aggregates: dict[str, Any]) -> list[str]:
    """The report's paragraph on what a score is (paired evaluation or training returns)."""
    if aggregates.get("score_source") != "evaluation":
        return ["**Scores are training returns** (no paired evaluation: `--eval-episodes 0`): each "
                "episode starts from its own state and includes the adapter's exploration.", ""]
    ev = aggregates["evaluation"]
    spent = sum(c.get("eval_env_steps", 0) for c in cells)
    return ["**Scores are paired evaluations.** Before each checkpoint budget"
            + (f" and every {ev['eval_every']} episodes' worth of budget" if ev["eval_every"] else "")
            + f", every cell plays {ev['episodes_per_point']} evaluation episodes from fixed start states "
            "(`evaluation_seeds(seed, n)`: the same for every adapter of one seed and for the zero-shot "
            "level), with z frozen at the adapter's estimate and the deterministic policy. A cell's score "
            "at a budget is its last such point within it. Evaluation episodes learn nothing, use no "
            f"labels and are **not counted in the budget** ({spent} env steps over all cells). "
            "Training returns stay in `results.csv` (`return`); evaluation points are `eval_return` "
            "(mean over the start states) and `eval_std`.", ""]


def _uses_dataset_labels(spec: CompareSpec, adapter: str) -> bool:
    """Whether ``adapter``, at the configuration it ran with, reads the model's dataset labels
    (its declared needs: ``"dataset"`` or ``"dataset+online"``)."""
    from bfm_gym.plugins import load_plugins

    cls = load_plugins().adapters[adapter][0]
    config = cls.config_class.from_dict(spec.configs[spec.variants(adapter)[0]])
    return "dataset" in cls.needs_for(config).labels


def _paired_md(spec: CompareSpec, aggregates: dict[str, Any]) -> list[str]:
    paired = aggregates.get("paired_vs_zero_shot")
    if not paired:
        return []
    md = ["", "## Against the zero-shot z, start state by start state (final budget)", "",
          "Last evaluation point minus the zero-shot z's return from the same start state, pooled over "
          "seeds x start states: mean difference [95% bootstrap CI], and how many pairs went up / down.", "",
          "| adapter | " + " | ".join(spec.tasks) + " |", "|---|" + "---|" * len(spec.tasks)]
    names = _labels(spec, aggregates)
    for adapter in spec.adapters:
        cols = []
        for task in spec.tasks:
            p = paired[adapter][task]
            cols.append("n/a" if not p["pairs"] else
                        f"{_fmt(p['mean_difference'])} [{_fmt(p['low'])}, {_fmt(p['high'])}], "
                        f"{p['better']} up / {p['worse']} down of {p['pairs']}")
        md.append(f"| {names[adapter]} | " + " | ".join(cols) + " |")
    return md


def _machines_md(cells: list[dict[str, Any]]) -> list[str]:
    """Which CPU kinds ran the cells' episodes, and a warning when there is more than one:
    rollouts from the same start states differ in the last float bits between kinds, so the
    pairing of a comparison holds within one kind (:func:`~bfm_gym.experiments.run_folder.cpu_kinds`)."""
    count: dict[str, int] = {}
    for c in cells:
        for kind in c.get("cpu_kinds") or ["not recorded"]:
            count[kind] = count.get(kind, 0) + 1
    if not count:
        return []
    line = "CPU kind of the cells' episodes: " + ", ".join(f"{k} ({n} cells)" for k, n in sorted(count.items())) + "."
    mixed = len([k for k in count if k != "not recorded"]) > 1 or any(len(c.get("cpu_kinds") or []) > 1 for c in cells)
    if mixed:
        line += (" **Warning: more than one kind of CPU ran these cells.** Their float32 kernels round "
                 "differently, and rollouts from the same start states drift apart (on walker by up to a "
                 "quarter of the return), so cells from different kinds are not paired: rerun them on one "
                 "kind of machine into a fresh `--out`, or compare each cell with its own zero-shot level.")
    return [line, ""]


def write_report(folder: Path, spec: CompareSpec, rows: list[dict[str, Any]], cells: list[dict[str, Any]],
                 aggregates: dict[str, Any], checkpoints: list[dict[str, Any]], command: str,
                 reps: int) -> dict[str, Path]:
    """Writes the plots and ``report.md`` into ``folder``.

    Args:
        folder: The comparison folder.
        spec: The grid (:class:`~bfm_gym.experiments.compare.CompareSpec`).
        rows: The rows of ``results.csv``.
        cells: The contents of ``cells.json``.
        aggregates: The contents of ``aggregates.json`` (before NaN -> null).
        checkpoints: Per checkpoint, per adapter, the scores behind the aggregates.
        command: The command line to record.
        reps: Bootstrap replicates for the curve bands.

    Returns:
        File name -> path of everything written.
    """
    names = _labels(spec, aggregates)
    cells = [c for c in cells if c.get("selected", True)]  # the other settings: tuning table, cells.json
    files = _curves(folder, spec, rows, aggregates, reps)
    files["aggregate.png"] = _interval_plot(folder, spec, aggregates)
    files["profile.png"] = _profile_plot(folder, spec, aggregates)

    md = [f"# Comparison: {', '.join(names[a] for a in spec.adapters)} on {', '.join(spec.tasks)}", "",
          "```", command, "```", "",
          f"Model `{spec.model}` ({spec.domain}); {len(spec.seeds)} seeds ({', '.join(map(str, spec.seeds))}); "
          f"{len(cells)} cells.", "", *_machines_md(cells),
          "## Budget", "",
          f"Every cell: {spec.episodes} episodes of {spec.episode_length} env steps = **{spec.budget_steps} env "
          f"steps** (lookahead / state-reset rollouts included) and at most **{spec.budget_labels} online "
          "reward labels**. A cell stops before an episode once either is spent; the episode that crosses "
          "the budget is kept in `results.csv` but not scored. Episode `k` of every cell resets with "
          "`episode_seed(seed, k)`: every adapter of one seed sees the same start states.", "",
          *_scoring_md(spec, cells, aggregates),
          "`dataset labels`: whether the adapter also starts from reward labels of the model's dataset "
          "samples (the zero-shot z, or OpTI-BFM's `warm_start`), information an adapter without them does "
          "not get; `labels used` counts online labels only.", "",
          "| adapter | task | episodes | env steps used | labels used | dataset labels | over budget (steps) |",
          "|---|---|---|---|---|---|---|"]
    for adapter in spec.adapters:
        dataset = "yes" if _uses_dataset_labels(spec, adapter) else "no"
        for task in spec.tasks:
            cs = [c for c in cells if c["adapter"] == adapter and c["task"] == task]
            rng = lambda key, cs=cs: (f"{min(c[key] for c in cs)}" if min(c[key] for c in cs) == max(c[key] for c in cs)  # noqa: E731
                                      else f"{min(c[key] for c in cs)}-{max(c[key] for c in cs)}")
            md.append(f"| {names[adapter]} | {task} | {rng('episodes')} | {rng('env_steps')} | {rng('labels_used')} "
                      f"| {dataset} | {rng('over_budget_steps')} |")
    md += ["", "Per cell: `cells.json`; per episode: `results.csv`.", "",
           *_tuning_md(spec, aggregates),
           "## Normalisation", "",
           "| task | zero-shot level (mean over seeds) | oracle | oracle source |", "|---|---|---|---|"]
    for task in spec.tasks:
        md.append(f"| {task} | {_fmt(aggregates['zero_shot'][task]['level'], 4)} | "
                  f"{_fmt(aggregates['oracle'][task]['value'], 4)} | {aggregates['oracle'][task]['source']} |")
    md += ["", "`score_zero_shot = return / zero-shot level`; `score_oracle = return / oracle`. The oracle is "
           "`--oracle` where given, else the zero-shot return with the model's dataset labels (OpTI-BFM's "
           "oracle definition), in which case both scores are the same. A level <= 0 gives no score.", "",
           "## Aggregates (IQM over tasks x seeds, 95% stratified bootstrap CI)", ""]
    norms = _norms(aggregates)
    header = "| budget (episodes / env steps) | adapter | " + " | ".join(
        f"IQM {label} | mean {label}" for _, label in norms) + " |"
    md += [header, "|---|---|" + "---|---|" * len(norms)]
    for cp in aggregates["checkpoints"]:
        for adapter in spec.adapters:
            cols = []
            for norm, _ in norms:
                for stat in ("iqm", "mean"):
                    iv = cp["adapters"][adapter][norm][stat]
                    cols.append(f"{_fmt(iv['value'])} [{_fmt(iv['low'])}, {_fmt(iv['high'])}]")
            md.append(f"| {cp['episodes']} / {cp['env_steps']} | {names[adapter]} | " + " | ".join(cols) + " |")
    md += _paired_md(spec, aggregates)
    md += _unlearning_md(spec, aggregates)
    md += _time_to_oracle_md(spec, aggregates)
    md += ["", "## Final " + ("evaluation" if aggregates.get("score_source") == "evaluation" else "training")
           + " returns per task (mean over seeds)", "",
           "| adapter | " + " | ".join(spec.tasks) + " |", "|---|" + "---|" * len(spec.tasks)]
    final = checkpoints[-1]
    for adapter in spec.adapters:
        vals = []
        for task in spec.tasks:
            r = np.asarray(final["adapters"][adapter]["return"][task], dtype=float)
            r = r[np.isfinite(r)]
            vals.append(f"{_fmt(float(r.mean()), 4)} (n={r.size})" if r.size else "n/a")
        md.append(f"| {names[adapter]} | " + " | ".join(vals) + " |")
    h2h = aggregates.get("latent_vs_weights") or []
    if h2h:
        md += ["", "## Latent search against weight fine-tuning", "",
               "Per budget, each adapter that searches z against each one that fine-tunes weights: the "
               "tasks where its mean return over seeds is higher, and the probability of improvement "
               "P(latent run > fine-tuning run), averaged over tasks, with a 95% bootstrap CI.", "",
               "| budget (episodes) | latent adapter | weight fine-tuning | tasks won | P(latent > fine-tuning) |",
               "|---|---|---|---|---|"]
        for h in h2h:
            p = h["p_improvement"]
            md.append(f"| {h['episodes']} | {names[h['latent']]} | {names[h['weights']]} | "
                      f"{len(h['tasks_won'])} / {h['tasks_compared']} | "
                      f"{_fmt(p['value'])} [{_fmt(p['low'])}, {_fmt(p['high'])}] |")
    md += ["", "## Plots", ""]
    for task in spec.tasks:
        md.append(f"![{task}](curve_{task}.png)")
    md += ["", "![IQM per adapter](aggregate.png)", "", "![performance profile](profile.png)", ""]
    files["report.md"] = write_text_atomic(folder / "report.md", "\n".join(md))
    return files
