"""Checkpoint sweeps side by side (one run's weight averages, or recipes on one dataset).

    python benchmarks/sweep_compare.py online=SWEEP.json ema=SWEEP_EMA.json avg4=SWEEP_AVG4.json \
        --from-step 60000 --out benchmarks/results/walker_weight_averaging.json

Each ``LABEL=JSON`` is a ``benchmarks/checkpoint_sweep.py`` result (one run exported as
``--weights online``, ``--weights ema`` or ``--average K``, or several runs on the same data,
e.g. with and without ``actor_bc``). Every sweep scores the same episodes (seed and episodes
per task), so at each step the sweeps are paired. Over the
steps at or after ``--from-step`` that every sweep scored, this writes per sweep: the mean,
median, minimum and maximum of the zero-shot mean over tasks, the mean absolute change
between neighbouring checkpoints (how much the curve swings), the best step, and how many
steps reach ``--floor``; plus each sweep's mean difference to the first one, paired per
step, with a bootstrap 95 % interval. A plot of the curves goes next to ``--out``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from _report import command, finish_plot, machine, write_report


def _curves(pairs: list[str]) -> dict[str, dict[int, dict]]:
    out: dict[str, dict[int, dict]] = {}
    for pair in pairs:
        label, sep, path = pair.partition("=")
        if not sep or not label or not path:
            raise SystemExit(f"sweep_compare: expected LABEL=SWEEP.json, got {pair!r}")
        if label in out:
            raise SystemExit(f"sweep_compare: label {label!r} given twice")
        rows = json.loads(Path(path).read_text())["checkpoints"]
        out[label] = {int(r["step"]): r for r in rows}
    return out


def summarise(curves: dict[str, dict[int, dict]], from_step: int, floor: float | None,
              reps: int = 10_000, seed: int = 0) -> dict:
    """The table the module docstring describes (pure: tested on synthetic sweeps)."""
    labels = list(curves)
    steps = sorted(set.intersection(*(set(c) for c in curves.values())))
    steps = [s for s in steps if s >= from_step]
    if len(steps) < 2:
        raise ValueError(f"sweep_compare: the sweeps share {len(steps)} steps at or after "
                         f"{from_step}; need at least 2")
    episodes = {(curves[k][s]["episodes"], curves[k][s]["seed"]) for k in labels for s in steps}
    if len(episodes) != 1:
        raise ValueError(f"sweep_compare: the sweeps scored different episodes (episodes, seed): "
                         f"{sorted(episodes)}; rerun them with one --episodes and --seed")
    means = {k: np.array([curves[k][s]["mean"] for s in steps], dtype=float) for k in labels}
    rng = np.random.default_rng(seed)
    base = labels[0]
    table = {}
    for k in labels:
        m = means[k]
        row = {"mean": round(float(m.mean()), 1), "median": round(float(np.median(m)), 1),
               "min": round(float(m.min()), 1), "max": round(float(m.max()), 1),
               "mean_abs_change": round(float(np.abs(np.diff(m)).mean()), 1),
               "best_step": steps[int(m.argmax())]}
        if floor is not None:
            row["steps_at_floor"] = int((m >= floor).sum())
        if k != base:
            d = m - means[base]
            boot = rng.integers(0, len(d), (reps, len(d)))
            lo, hi = np.quantile(d[boot].mean(1), [0.025, 0.975])
            row[f"minus_{base}"] = {"mean": round(float(d.mean()), 1),
                                    "ci95": [round(float(lo), 1), round(float(hi), 1)],
                                    "steps_better": int((d > 0).sum())}
        table[k] = row
    return {"steps": steps, "episodes": episodes.pop(), "summary": table,
            "curves": {k: [round(float(v), 1) for v in means[k]] for k in labels}}


def plot(result: dict, path: Path, floor: float | None,
         title: str = "one run's checkpoints: online weights vs weight averages") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for label, values in result["curves"].items():
        ax.plot(result["steps"], values, "-o", ms=3, lw=1.5, label=label)
    if floor is not None:
        ax.axhline(floor, color="k", ls=":", lw=1, label=f"floor {floor:g}")
    n, seed = result["episodes"]
    finish_plot(fig, ax, path, xlabel="updates", ylabel=f"zero-shot mean over tasks ({n} episodes/task, seed {seed})",
                title=title)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", nargs="+", metavar="LABEL=JSON",
                        help="checkpoint_sweep.py results; the first is the reference")
    parser.add_argument("--from-step", type=int, default=0)
    parser.add_argument("--floor", type=float, default=None)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--title", default="one run's checkpoints: online weights vs weight averages")
    args = parser.parse_args()
    curves = _curves(args.sweeps)
    try:
        result = summarise(curves, args.from_step, args.floor)
    except ValueError as err:
        parser.error(str(err))
    report = {"benchmark": "sweep_compare", "command": command(), "machine": machine(),
              "sweeps": dict(pair.partition("=")[::2] for pair in args.sweeps),
              "from_step": args.from_step, "floor": args.floor, **result}
    write_report(args.out, report)
    plot(result, args.out.with_suffix(".png"), args.floor, args.title)
    for label, row in result["summary"].items():
        print(label, row)


if __name__ == "__main__":
    main()
