"""Adaptation benchmarks: OpTI-BFM decision rate, and quality on shipped models.

* ``--decision-rate``: decisions per second of the ``opti`` adapter (UCB over 128
  candidates and both F heads, plus the least-squares update of the step) and of
  its Thompson-sampling mode, for each domain's ``cpu``-size model (weights need
  not be trained for timing). Paper: 280 Hz UCB on an RTX 4090.
* ``--quality``: for each model (default: the shipped ones), ``bfm-gym compare`` of
  zero-shot, opti, rela and lola on every task, 3 seeds, 50 episodes of env-step
  budget (lookahead steps counted), then the targets of the issues: OpTI reaching
  90 % of the oracle (zero-shot with dataset labels) within 10 episodes, LoLA's
  median gain over zero-shot (>= +10 %) with its mean curve never more than 3 %
  below zero-shot, ReLA's final gain and worst dip. The zero-shot level of a task is
  the mean return of the zero-shot adapter's episodes over all seeds.

    python benchmarks/adaptation.py --decision-rate --out benchmarks/results/adaptation.json
    python benchmarks/adaptation.py --quality --models point_mass_maze \
        --out benchmarks/results/adaptation_quality.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import time
from pathlib import Path

from _cpu import machine_info
from _report import command, write_report

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

from bfm_gym.utils.blas import set_blas_threads

# One OpenBLAS thread, set at run time: _cpu and _report import numpy, and OpenBLAS reads
# OPENBLAS_NUM_THREADS only when numpy is first imported (bfm_gym.utils.blas). Until stop 43
# this file set that variable here instead, too late: its AVX2 "1 thread" runs used two.
set_blas_threads(1)

DIMS = {"walker": (24, 6), "cheetah": (17, 6), "quadruped": (78, 12), "point_mass_maze": (4, 2)}


def decision_rate(domain: str, mode: str, steps: int, model_name: str | None = None,
                  reselect_every: int | None = None, compare_handle: bool = True) -> dict:
    """Decisions/s of ``opti``: an untrained ``cpu``-size model of ``domain``, or a shipped one.

    A decision is one env step's ``act`` (a UCB/TS selection every ``reselect_every`` steps,
    default: the adapter's) plus its ``observe`` (the least-squares update). The plain policy
    step it is compared with, ``policy_step_us``, is the latent wrapper's policy forward on
    the same model (``bfm.policy_runner(1)``), timed interleaved with the decisions so both
    see the same machine load. ``vs_handle_path`` times, also interleaved step by step, a
    second adapter that computes phi and psi through the model handle (``_fast = None``, the
    path before ``FBFeatures``) on the same stream: the speedup of the fast path measured
    side by side, which a shared machine's load does not bias."""
    import torch

    from bfm_gym.adapters.opti import OptiAdapter
    from bfm_gym.models import BFM, FBConfig, FBModel, ModelMetadata

    torch.manual_seed(0)
    obs_dim, act_dim = DIMS[domain]
    if model_name is not None:
        from bfm_gym.pretrained import load

        bfm = load(model_name)
    else:
        # z_dim 50: the size of every committed row (the maze's cpu preset has 100 since stop 27)
        config = FBConfig.preset(domain, "cpu", z_dim=50)
        model = FBModel(config, obs_dim=obs_dim, action_dim=act_dim)
        model.finalize(torch.randn(1024, obs_dim))
        bfm = BFM(model, ModelMetadata(domain=domain))
    cfg: dict = {"mode": mode}
    if reselect_every is not None:
        cfg["reselect_every"] = reselect_every
    adapter = OptiAdapter(bfm, {"domain": domain, "task": None}, cfg, seed=0)
    runner = bfm.policy_runner(1)
    handle = OptiAdapter(bfm, {"domain": domain, "task": None}, cfg, seed=0)
    handle._fast = None
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(steps + 10, obs_dim)).astype(np.float32)
    rewards = rng.uniform(size=steps + 10)

    class T:  # one low-level transition, as the wrapper's HoldTransitions
        def __init__(self, o: np.ndarray, r: float) -> None:
            self.next_obs, self.reward = o[None], np.array([r])

        def __len__(self) -> int:
            return 1

    for i in range(10):  # warm-up
        for a in (adapter, handle) if compare_handle else (adapter,):
            a.act(obs[i])
            a.observe(T(obs[i + 1], rewards[i]))
    hdl_s = hdl_c = 0.0
    # wall clock and this process's CPU time (all its threads): on a shared machine the CPU
    # time is what the code costs, the wall clock also holds the waits for a core
    act_s = obs_s = pol_s = act_c = obs_c = pol_c = 0.0
    clock, cpu = time.perf_counter, time.process_time
    for i in range(10, steps + 9):
        t0, c0 = clock(), cpu()
        z = adapter.act(obs[i])
        t1, c1 = clock(), cpu()
        adapter.observe(T(obs[i + 1], rewards[i]))
        t2, c2 = clock(), cpu()
        runner.obs[0] = obs[i]
        runner.z[0] = z
        runner()
        t3, c3 = clock(), cpu()
        act_s, obs_s, pol_s = act_s + t1 - t0, obs_s + t2 - t1, pol_s + t3 - t2
        act_c, obs_c, pol_c = act_c + c1 - c0, obs_c + c2 - c1, pol_c + c3 - c2
        if compare_handle:
            handle.act(obs[i])
            handle.observe(T(obs[i + 1], rewards[i]))
            hdl_s, hdl_c = hdl_s + clock() - t3, hdl_c + cpu() - c3
    n = steps - 1
    return {"decisions_per_s": round(n / (act_s + obs_s), 1),
            "select_ms": round(1000 * act_s / n, 3), "update_ms": round(1000 * obs_s / n, 3),
            "policy_step_us": round(1e6 * pol_s / n, 1),
            "decision_vs_policy_step": round((act_s + obs_s) / pol_s, 2),
            "cpu_time": {"decisions_per_cpu_s": round(n / (act_c + obs_c), 1),
                         "select_ms": round(1000 * act_c / n, 3),
                         "update_ms": round(1000 * obs_c / n, 3),
                         "policy_step_us": round(1e6 * pol_c / n, 1),
                         "decision_vs_policy_step": round((act_c + obs_c) / pol_c, 2)},
            "vs_handle_path": {"handle_decisions_per_s": round(n / hdl_s, 1),
                               "speedup_wall": round(hdl_s / (act_s + obs_s), 2),
                               "speedup_cpu": round(hdl_c / (act_c + obs_c), 2)}
            if compare_handle else None,
            "fast_path": adapter._fast is not None,
            "reselect_every": adapter.config.reselect_every,
            "policy_path": runner.path,
            "z_dim": bfm.z_dim, "candidates": adapter.config.candidates}


def _curve(rows: list[dict], budget: int, episode_len: int) -> np.ndarray:
    """Mean return over seeds at each budget checkpoint of one episode length.

    A cell's value at budget b is the return of its last episode that ended within b env
    steps (lookahead steps included), so adapters that spend steps on lookahead are
    compared at equal interaction, not at equal episode index.
    """
    by_seed: dict[int, list[tuple[int, float]]] = {}
    for r in rows:
        by_seed.setdefault(int(r["seed"]), []).append((int(r["env_steps"]), float(r["return"])))
    marks = np.arange(episode_len, budget + 1, episode_len)
    out = np.full((len(by_seed), len(marks)), np.nan)
    for i, pts in enumerate(by_seed.values()):
        pts.sort()
        for j, m in enumerate(marks):
            within = [ret for steps, ret in pts if steps <= m]
            if within:
                out[i, j] = within[-1]
    return np.nanmean(out, axis=0)


def _smooth(curve: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over ``window`` budget checkpoints (episode returns are bimodal on the
    maze: 0 or ~850 depending on the start room, so single episodes say little)."""
    return np.array([np.nanmean(curve[max(0, i - window + 1): i + 1]) for i in range(len(curve))])


def quality(model: str, adapters: list[str], seeds: int, episodes: int, out: Path,
            config: dict, workers: int | None, window: int = 5) -> dict:
    """Runs ``bfm-gym compare`` on every task of ``model`` and derives the issue targets."""
    from bfm_gym.envs import list_tasks
    from bfm_gym.experiments import compare
    from bfm_gym.pretrained import load

    domain = load(model).metadata.domain
    tasks = [f"{domain}-{t}" for t in list_tasks(domain)]
    res = compare(model, tasks, adapters, out=out, seeds=seeds, episodes=episodes,
                  config=config, workers=workers, progress=True,
                  command=f"benchmarks/adaptation.py --quality --models {model}")
    episode_len = 1000
    budget = episodes * episode_len
    per_task: dict[str, dict] = {}
    for task in tasks:
        t_rows = [r for r in res.rows if r["task"] == task]
        zs_rows = [r for r in t_rows if r["adapter"] == "zero-shot"]
        # the zero-shot level: the mean return of the zero-shot adapter's episodes (all seeds)
        zs = float(np.mean([r["return"] for r in zs_rows])) if zs_rows else float("nan")
        entry: dict = {"zero_shot": round(zs, 2), "adapters": {}}
        for a in adapters:
            raw = _curve([r for r in t_rows if r["adapter"] == a], budget, episode_len)
            curve = _smooth(raw, window)
            final = float(curve[-1])
            e: dict = {"curve": [round(float(v), 2) for v in raw],
                       "smoothed": [round(float(v), 2) for v in curve],
                       f"final_mean_last{window}": round(final, 2)}
            if zs > 0:
                rel = curve[window - 1:] / zs - 1.0  # dips once a full window exists
                e["gain_final_pct"] = round(100 * (final / zs - 1.0), 2)
                e["worst_dip_pct"] = round(100 * float(np.nanmin(np.minimum(rel, 0.0))), 2)
                hit = np.nonzero(curve >= 0.9 * zs)[0]
                e["episodes_to_90pct_oracle"] = int(hit[0]) + 1 if hit.size else None
            e["curve_vs_zero_shot"] = [round(float(v) / zs, 4) if zs > 0 else None for v in curve]
            entry["adapters"][a] = e
        per_task[task] = entry
    summary: dict = {}
    for a in adapters:
        gains = [t["adapters"][a]["gain_final_pct"] for t in per_task.values()
                 if "gain_final_pct" in t["adapters"][a]]
        dips = [t["adapters"][a]["worst_dip_pct"] for t in per_task.values()
                if "worst_dip_pct" in t["adapters"][a]]
        # ratio of means: the tasks' smoothed curves summed over the tasks' zero-shot levels
        pos = [t for t in per_task.values() if t["zero_shot"] > 0]
        mean_curve = (np.sum([np.asarray(t["adapters"][a]["smoothed"]) for t in pos], axis=0)
                      / sum(t["zero_shot"] for t in pos))[window - 1:] if pos else np.array([np.nan])
        hits = [t["adapters"][a].get("episodes_to_90pct_oracle") for t in per_task.values()
                if t["zero_shot"] > 0]
        summary[a] = {
            "tasks_with_positive_zero_shot": len(gains),
            "median_gain_final_pct": round(float(np.median(gains)), 2) if gains else None,
            "per_task_gain_final_pct": gains,
            "worst_task_dip_pct": round(float(min(dips)), 2) if dips else None,
            "mean_curve_min_vs_zero_shot_pct": round(100 * (float(np.nanmin(mean_curve)) - 1.0), 2),
            "mean_curve_final_vs_zero_shot_pct": round(100 * (float(mean_curve[-1]) - 1.0), 2),
            "tasks_at_90pct_oracle_within_10_episodes": sum(1 for h in hits if h is not None and h <= 10),
        }
    return {"model": model, "tasks": per_task, "summary": summary, "compare_out": str(out),
            "smoothing_window_episodes": window,
            "report": str(out / "report.md"), "seeds": seeds, "episodes": episodes,
            "config": config}


def plot_quality(q: dict, path: Path) -> None:
    """One panel per task: the adapters' smoothed curves against env-step budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = list(q["tasks"])
    cols = 2 if len(tasks) > 1 else 1
    rows = (len(tasks) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, 3.6 * rows), squeeze=False)
    for ax, task in zip(axes.flat, tasks, strict=False):
        entry = q["tasks"][task]
        for a, e in entry["adapters"].items():
            x = np.arange(1, len(e["smoothed"]) + 1)
            ax.plot(x, e["smoothed"], label=a)
        ax.axhline(entry["zero_shot"], color="gray", ls=":", label="zero-shot level")
        ax.set_title(task, fontsize=9)
        ax.set_xlabel("budget (episodes of env steps)")
        ax.set_ylabel(f"return ({q['smoothing_window_episodes']}-episode mean)")
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(f"{q['model']}: {q['seeds']} seeds, mean over seeds")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def combine(files: list[str], model: str) -> dict:
    """One quality table from several ``--quality`` results of the same model and seeds.

    An adapter in a later file replaces the same adapter of an earlier one (for instance
    a rerun with another learning rate); every file must measure the same zero-shot level
    per task, the check that the runs used the same model, tasks and seeds.
    """
    merged: dict | None = None
    sources = []
    for f in files:
        report = json.loads(Path(f).read_text())
        q = report.get("quality", {}).get(model)
        if q is None:
            raise SystemExit(f"{f} has no --quality result for {model!r}.")
        sources.append({"file": f, "command": report.get("command"), "config": q.get("config"),
                        "adapters": sorted(q["summary"])})
        if merged is None:
            merged = copy.deepcopy(q)
            continue
        if (q["seeds"], q["episodes"]) != (merged["seeds"], merged["episodes"]):
            raise SystemExit(f"{f} has {q['seeds']} seeds x {q['episodes']} episodes; the first file "
                             f"{merged['seeds']} x {merged['episodes']}.")
        for task, entry in q["tasks"].items():
            if abs(entry["zero_shot"] - merged["tasks"][task]["zero_shot"]) > 1e-6:
                raise SystemExit(f"{f}: zero-shot level of {task} differs from the first file's "
                                 "(another model or seeds?).")
            merged["tasks"][task]["adapters"].update(entry["adapters"])
        merged["summary"].update(q["summary"])
    assert merged is not None
    merged["sources"] = sources
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decision-rate", action="store_true")
    parser.add_argument("--quality", action="store_true")
    parser.add_argument("--domains", default="point_mass_maze,walker")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--models", default="", help="Model names or folders (default: shipped).")
    parser.add_argument("--adapters", default="zero-shot,opti,rela,lola")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="ADAPTER.KEY=VALUE", help="Adapter config, as bfm-gym compare --set.")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--runs", default="runs/bench-adaptation", help="compare output root.")
    parser.add_argument("--out", default="benchmarks/results/adaptation.json")
    parser.add_argument("--combine", nargs="+", default=None, metavar="JSON",
                        help="Merge --quality results of one model (--models NAME): an adapter in a "
                             "later file replaces the same adapter of an earlier one; writes --out "
                             "and its plot.")
    parser.add_argument("--reselect-every", type=int, default=None,
                        help="--decision-rate: steps between UCB/TS selections (default: the "
                             "adapter's, 10; 1 = the paper's per-step selection).")
    parser.add_argument("--no-handle-path", action="store_true",
                        help="--decision-rate: skip the interleaved handle-path comparison (with "
                             "torch threads > 1 on a busy machine, the handle path's torch "
                             "threads keep spinning between its ops and slow the fast path down).")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (give it only free cores; 1 on a shared machine).")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    report: dict = {
        "benchmark": "adaptation",
        "command": command(),
        "machine": machine_info(torch_threads=torch.get_num_threads()),
    }
    if args.decision_rate:
        from bfm_gym.pretrained import shipped_models

        report["decision_rate"] = {
            f"{d}/{mode}": decision_rate(d, mode, args.steps, reselect_every=args.reselect_every,
                                         compare_handle=not args.no_handle_path)
            for d in args.domains.split(",") for mode in ("ucb", "ts")
        }
        for name in sorted(shipped_models()):  # the shipped models' own sizes
            if name in DIMS:
                for mode in ("ucb", "ts"):
                    report["decision_rate"][f"{name} (shipped)/{mode}"] = decision_rate(
                        name, mode, args.steps, model_name=name,
                        reselect_every=args.reselect_every, compare_handle=not args.no_handle_path)
        report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        report["goals"] = {
            "decisions_per_s": ">= 1000 (shipped models, UCB)",
            "decision_vs_policy_step": "<= 3 (select + update vs the wrapper's policy forward)",
        }
        for k, v in report["decision_rate"].items():
            print(k, v, flush=True)
    if args.combine:
        if len([m for m in args.models.split(",") if m]) != 1:
            raise SystemExit("--combine needs exactly one model: --models NAME.")
        report["quality"] = {args.models: combine(args.combine, args.models)}
    if args.quality:
        from bfm_gym.experiments.compare import parse_overrides
        from bfm_gym.pretrained import shipped_models

        names = [m for m in args.models.split(",") if m] or sorted(shipped_models())
        if not names:
            raise SystemExit("--quality needs a model: --models NAME_OR_FOLDER (none is shipped).")
        config = parse_overrides(args.overrides)
        report["quality"] = {
            name: quality(name, args.adapters.split(","), args.seeds, args.episodes,
                          Path(args.runs) / Path(name).name, config, args.workers)
            for name in names}
    for name, q in report.get("quality", {}).items():  # from --quality or --combine
        plot_quality(q, Path(args.out).with_name(f"{Path(args.out).stem}_{Path(name).name}_curves.png"))
        for a, row in q["summary"].items():
            print(name, a, row, flush=True)
    write_report(args.out, report)


if __name__ == "__main__":
    main()
