"""Where the time goes: py-spy profiles of the latent wrapper step and of OpTI-BFM's
select + update, summarised to a short JSON (not the raw dump).

Each target runs in a child process under ``py-spy record --native`` (py-spy installs from the
registry: ``pip install py-spy``); the summary keeps, for the samples inside the target's loop,
the share of inclusive and self time of the top frames (Python and native: MuJoCo, OpenBLAS,
numpy, torch). Shares, not absolute times: sampling slows the child, and the machine may be
shared.

    python benchmarks/profile_hot_paths.py --out benchmarks/results/profile_hot_paths.json
    python benchmarks/profile_hot_paths.py --target wrapper --steps 6000   # child mode (no py-spy)

It also profiles one FB update of the walker ``cpu`` preset (the default path of
``benchmarks/fb_update_speed.py``) with ``torch.profiler``: the top ops by self CPU time.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _report import command, write_report
from _cpu import machine_info

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

# the per-step calls whose samples are summarised (setup and imports are left out)
ROOTS = {
    "wrapper": ("LatentActionWrapper.step",),
    "opti": ("OptiAdapter.act", "OptiAdapter.observe"),
    "opti_every_step": ("OptiAdapter.act", "OptiAdapter.observe"),
}


def wrapper_loop(steps: int) -> None:
    """The wrapper on walker run, z_hold=1, a new random latent every step."""
    import numpy as np

    from wrapper_throughput import cpu_model
    from bfm_gym.envs import make_env
    from bfm_gym.wrappers import LatentActionWrapper

    model = cpu_model("walker")
    env = LatentActionWrapper(make_env("walker", "run"), model)
    latent = np.random.default_rng(0).uniform(-1, 1, (steps, model.z_dim)).astype(np.float32)
    env.reset(seed=0)
    for z in latent:
        out = env.step(z)
        if out[2] or out[3]:
            env.reset()


def opti_loop(steps: int, reselect_every: int) -> None:
    """OpTI-BFM UCB on the shipped walker model: act (select) + observe (update) per step."""
    from adaptation import decision_rate

    decision_rate("walker", "ucb", steps, model_name="walker", reselect_every=reselect_every,
                  compare_handle=False)


def fb_update_profile(updates: int = 6, top: int = 15) -> dict:
    """Top torch ops (self CPU time share) of ``updates`` FB updates, walker ``cpu`` preset,
    the default config (``fb_update_speed.py``'s ``fast`` variant)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from fb_update_speed import Runner

    runner = Runner("walker", "cpu", "fast", torch.device("cpu"), 0)
    runner.run(3)  # warm-up
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        runner.run(updates)
    rows = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    total = sum(e.self_cpu_time_total for e in rows)
    return {"updates": updates, "amp": str(runner.trainer.config.amp),
            "top_ops_self_cpu": [{"op": e.key, "pct": round(100 * e.self_cpu_time_total / total, 1),
                                  "calls_per_update": round(e.count / updates, 1)}
                                 for e in rows[:top]]}  # fmt: skip


def summarize(raw: Path, roots: tuple[str, ...], top: int = 25) -> dict:
    """Inclusive and self shares (%) of the frames from the first of ``roots`` down, over the
    samples that hold one of ``roots``, in py-spy's raw output."""
    incl: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    strip = re.compile(r":\d+\)")
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        at = next((i for i, f in enumerate(frames) if f.split(" (")[0] in roots), None)
        if at is None:
            continue
        n = int(count)
        below = [strip.sub(")", f) for f in frames[at:]]
        total += n
        for f in set(below):
            incl[f] += n
        if below:
            own[below[-1]] += n
    pct = lambda c: [{"frame": f, "pct": round(100 * v / total, 1)} for f, v in c.most_common(top)]  # noqa: E731
    return {"samples": total, "inclusive": pct(incl), "self": pct(own)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", choices=list(ROOTS), default=None,
                        help="Child mode: run one target's loop without profiling.")
    parser.add_argument("--steps", type=int, default=6000)
    parser.add_argument("--opti-steps", type=int, default=1500)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second.")
    parser.add_argument("--out", default="benchmarks/results/profile_hot_paths.json")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    if args.target == "wrapper":
        wrapper_loop(args.steps)
        return
    if args.target is not None:
        opti_loop(args.opti_steps, 1 if args.target == "opti_every_step" else 10)
        return
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        raise SystemExit("py-spy not found: pip install py-spy (into this venv).")
    report: dict = {"benchmark": "profile_hot_paths", "command": command(),
                    "machine": machine_info(torch_threads=1), "profiles": {}}
    for target, roots in ROOTS.items():
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(tmp) / "raw.txt"
            start = time.perf_counter()
            subprocess.run([spy, "record", "--native", "--format", "raw", "-r", str(args.rate),
                            "-o", str(raw), "--", sys.executable, __file__, "--target", target,
                            "--steps", str(args.steps), "--opti-steps", str(args.opti_steps)],
                           check=True, capture_output=True)
            summary = summarize(raw, roots)
        summary["wall_s"] = round(time.perf_counter() - start, 1)
        report["profiles"][target] = summary
        print(target, summary["inclusive"][:8], flush=True)
    report["fb_update_torch_profiler"] = fb_update_profile()
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    write_report(args.out, report)


if __name__ == "__main__":
    main()
