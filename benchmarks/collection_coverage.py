"""Which collector covers more behaviour for the same number of env steps?

Collects ``--episodes`` episodes per agent (random, ou, rnd) and domain with the
same seed, and records each dataset's coverage report (best / mean relabelled
episode return per task, maze cells visited, torso-height quantiles) plus the
collection wall time. Used to justify the agent and size of the shipped datasets.

    python benchmarks/collection_coverage.py --domains walker,point_mass_maze --episodes 100

An agent may carry config fields after a colon, ``rnd:updates_per_step=0.5`` (several
joined by ``+``), to compare settings of one agent:

    python benchmarks/collection_coverage.py --domains cheetah \
        --agents rnd,rnd:updates_per_step=0.5 --episodes 100 \
        --out benchmarks/results/collection_coverage_cheetah_rnd.json
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from _report import command, machine, write_report

os.environ.setdefault("MUJOCO_GL", "egl")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", default="walker,point_mass_maze")
    parser.add_argument("--agents", default="random,ou,rnd")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/collection_coverage.json")
    args = parser.parse_args()
    import torch

    from bfm_gym.config import SetValue
    from bfm_gym.data.collection import collect

    torch.set_num_threads(1)
    report: dict = {
        "benchmark": "collection_coverage",
        "command": command(),
        "machine": machine(),
        "results": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for domain in args.domains.split(","):
            for spec in args.agents.split(","):
                agent, _, fields = spec.partition(":")
                config = {k: SetValue(v) for k, _, v in (f.partition("=") for f in fields.split("+") if f)}
                out = Path(tmp) / f"{domain}-{spec.replace(':', '-')}"
                start = time.perf_counter()
                collect(domain, out, agent=agent, episodes=args.episodes, seed=args.seed,
                        agent_config=config, progress=False)
                wall = time.perf_counter() - start
                cov = json.loads((out / "coverage.json").read_text())
                cov["wall_seconds_including_coverage"] = round(wall, 1)
                report["results"][f"{domain}/{spec}"] = cov
                best = {t: v["best_return"] for t, v in cov["tasks"].items()}
                print(domain, spec, f"{wall:.0f}s", best, flush=True)
    write_report(args.out, report)


if __name__ == "__main__":
    main()
