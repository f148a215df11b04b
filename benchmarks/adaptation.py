"""Adaptation benchmarks: OpTI-BFM decision rate, and quality on shipped models.

* ``--decision-rate``: decisions per second of the ``opti`` adapter (UCB over 128
  candidates and both F heads, plus the least-squares update of the step) and of
  its Thompson-sampling mode, for each domain's ``cpu``-size model (weights need
  not be trained for timing). Paper: 280 Hz UCB on an RTX 4090.
* ``--quality``: for each shipped model and task, 3 seeds of ``opti`` for 10
  episodes against the zero-shot oracle (50k dataset labels); goal: >= 90 % of the
  oracle's return within 10 episodes without dataset labels.

    python benchmarks/adaptation.py --decision-rate --out benchmarks/results/adaptation.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
# One BLAS thread: on 2 shared cores a second BLAS thread halves the decision rate.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

DIMS = {"walker": (24, 6), "cheetah": (17, 6), "quadruped": (78, 12), "point_mass_maze": (4, 2)}


def decision_rate(domain: str, mode: str, steps: int) -> dict:
    import torch

    from bfm_gym.adapters.opti import OptiAdapter
    from bfm_gym.models import BFM, FBConfig, FBModel, ModelMetadata

    torch.manual_seed(0)
    obs_dim, act_dim = DIMS[domain]
    model = FBModel(FBConfig.preset(domain, "cpu"), obs_dim=obs_dim, action_dim=act_dim)
    model.finalize(torch.randn(1024, obs_dim))
    bfm = BFM(model, ModelMetadata(domain=domain))
    adapter = OptiAdapter(bfm, {"domain": domain, "task": None}, {"mode": mode}, seed=0)
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(steps + 10, obs_dim)).astype(np.float32)
    rewards = rng.uniform(size=steps + 10)

    class T:  # one low-level transition, as the wrapper's HoldTransitions
        def __init__(self, o: np.ndarray, r: float) -> None:
            self.next_obs, self.reward = o[None], np.array([r])

        def __len__(self) -> int:
            return 1

    for i in range(10):  # warm-up
        adapter.act(obs[i])
        adapter.observe(T(obs[i + 1], rewards[i]))
    act_s = obs_s = 0.0
    for i in range(10, steps + 9):
        t0 = time.perf_counter()
        adapter.act(obs[i])
        t1 = time.perf_counter()
        adapter.observe(T(obs[i + 1], rewards[i]))
        t2 = time.perf_counter()
        act_s += t1 - t0
        obs_s += t2 - t1
    n = steps - 1
    return {"decisions_per_s": round(n / (act_s + obs_s), 1),
            "select_ms": round(1000 * act_s / n, 3), "update_ms": round(1000 * obs_s / n, 3),
            "z_dim": bfm.z_dim, "candidates": adapter.config.candidates}


def quality(models: list[str], seeds: int, episodes: int) -> list[dict]:
    from bfm_gym.envs import list_tasks
    from bfm_gym.experiments import adapt
    from bfm_gym.pretrained import load, shipped_models

    names = models or sorted(shipped_models())
    if not names:
        raise SystemExit("--quality needs a shipped model; none is shipped yet (see the pre-training issue).")
    rows = []
    for name in names:
        domain = load(name).metadata.domain
        for task in list_tasks(domain):
            for seed in range(seeds):
                res = adapt(name, task, "opti", episodes=episodes, seed=seed, progress=False)
                zs = res.summary["zero_shot"]
                best = res.summary["best"]
                rows.append({"model": name, "task": task, "seed": seed, "oracle": zs, "best": best,
                             "returns": [r["return"] for r in res.records],
                             "best_over_oracle": None if not zs else round(best / zs, 3)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decision-rate", action="store_true")
    parser.add_argument("--quality", action="store_true")
    parser.add_argument("--domains", default="point_mass_maze,walker")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--models", default="")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--out", default="benchmarks/results/adaptation.json")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    report: dict = {
        "benchmark": "adaptation",
        "command": "python benchmarks/adaptation.py " + " ".join(
            f"--{k.replace('_', '-')}" + ("" if isinstance(v, bool) else f" {v}")
            for k, v in vars(args).items() if k != "out" and v not in (False, "")),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "torch_threads": torch.get_num_threads()},
    }
    if args.decision_rate:
        report["decision_rate"] = {
            f"{d}/{mode}": decision_rate(d, mode, args.steps)
            for d in args.domains.split(",") for mode in ("ucb", "ts")
        }
        for k, v in report["decision_rate"].items():
            print(k, v, flush=True)
    if args.quality:
        report["quality"] = quality([m for m in args.models.split(",") if m], args.seeds, args.episodes)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
