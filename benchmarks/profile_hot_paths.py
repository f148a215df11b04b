"""Where the time goes: py-spy profiles of the latent wrapper step and of OpTI-BFM's
select + update, summarised to a short JSON (not the raw dump).

Each target runs in a child process under ``py-spy record --native`` (py-spy installs from the
registry: ``pip install py-spy``); the summary keeps, for the samples inside the target's loop,
the share of inclusive and self time of the top frames (Python and native: MuJoCo, OpenBLAS,
numpy, torch). Shares, not absolute times: sampling slows the child, and the machine may be
shared.

    python benchmarks/profile_hot_paths.py --out benchmarks/results/profile_hot_paths.json
    python benchmarks/profile_hot_paths.py --target wrapper --steps 6000   # child mode (no py-spy)

``vector_workers2`` profiles the vector env of 8 walker envs with ``workers=2`` and its forked
worker (``py-spy --subprocesses``): the parent's step and the worker's loop are summarised
apart (``worker_process``), so the share of each spent waiting for the other shows.

It also profiles one FB update of the walker ``cpu`` preset (the default path of
``benchmarks/fb_update_speed.py``) with ``torch.profiler``: the top ops by self CPU time.
``--fb-only`` profiles only the FB update, for the ``fast`` and ``naive`` variants, and adds an
op census of one update (calls and bytes written per op, counted, so it does not depend on
the machine's load)::

    python benchmarks/profile_hot_paths.py --fb-only --out benchmarks/results/fb_update_speed_profile.json
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

from bfm_gym.utils.blas import set_blas_threads

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("OMP_NUM_THREADS", "1")
# One OpenBLAS thread, set at run time: _cpu / _report import numpy above, and OpenBLAS reads
# OPENBLAS_NUM_THREADS only when numpy is first imported (bfm_gym.utils.blas).
set_blas_threads(1)

# the per-step calls whose samples are summarised (setup and imports are left out)
ROOTS = {
    "wrapper": ("LatentActionWrapper.step",),
    "opti": ("OptiAdapter.act", "OptiAdapter.observe"),
    "opti_every_step": ("OptiAdapter.act", "OptiAdapter.observe"),
    "vector_workers2": ("LatentActionVectorEnv.step",),
}
WORKER_ROOTS = {"vector_workers2": ("_worker",)}
"""Targets with a worker process (profiled with ``--subprocesses``): the roots of its loop,
summarised on their own."""


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


def vector_loop(steps: int, num_envs: int = 8) -> None:
    """The vector env of 8 walker envs with ``workers=2`` (one forked worker, shared-memory
    hand-off), a new random latent per env every step."""
    import numpy as np

    from wrapper_throughput import cpu_model
    from bfm_gym.envs import make_env
    from bfm_gym.wrappers import LatentActionVectorEnv

    model = cpu_model("walker")
    vec = LatentActionVectorEnv([make_env("walker", "run") for _ in range(num_envs)], model,
                                workers=2)  # fmt: skip
    latent = np.random.default_rng(0).uniform(-1, 1, (steps // num_envs, num_envs, model.z_dim))
    vec.reset(seed=0)
    for z in latent.astype(np.float32):
        vec.step(z)
    vec.close()


def opti_loop(steps: int, reselect_every: int) -> None:
    """OpTI-BFM UCB on the shipped walker model: act (select) + observe (update) per step."""
    from adaptation import decision_rate

    decision_rate("walker", "ucb", steps, model_name="walker", reselect_every=reselect_every,
                  compare_handle=False)


def fb_update_profile(updates: int = 6, top: int = 15, variant: str = "fast") -> dict:
    """Top torch ops (self CPU time share) of ``updates`` FB updates, walker ``cpu`` preset,
    ``fb_update_speed.py``'s ``variant`` (``fast``: the default config); also by input shape."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from fb_update_speed import Runner, naive_patches

    runner = Runner("walker", "cpu", variant, torch.device("cpu"), 0)
    runner.run(3)  # warm-up
    with naive_patches(variant == "naive"), profile(
        activities=[ProfilerActivity.CPU], record_shapes=True
    ) as prof:
        for _ in range(updates):
            runner.trainer.update(runner.batch)

    def table(events: list) -> list[dict]:
        rows = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in rows)
        return [{"op": e.key, "pct": round(100 * e.self_cpu_time_total / total, 1),
                 "calls_per_update": round(e.count / updates, 1),
                 **({"shapes": str(e.input_shapes)[:120]} if e.input_shapes else {})}
                for e in rows[:top]]  # fmt: skip

    return {"updates": updates, "variant": variant, "amp": str(runner.trainer.config.amp),
            "top_ops_self_cpu": table(prof.key_averages()),
            "top_ops_self_cpu_by_shape": table(prof.key_averages(group_by_input_shape=True))}  # fmt: skip


def fb_update_census(variant: str = "fast", top: int = 15) -> dict:
    """Every aten op one FB update dispatches (walker ``cpu`` preset): calls and bytes of the
    outputs per op, and the casts (``_to_copy``) by shape and dtypes. Counted, not timed."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    from fb_update_speed import Runner, naive_patches

    views = {"detach", "view", "t", "transpose", "expand", "slice", "select", "unsqueeze",
             "_unsafe_view", "as_strided", "alias", "diagonal", "split", "reshape", "permute"}  # fmt: skip
    calls: collections.Counter[str] = collections.Counter()
    written: collections.Counter[str] = collections.Counter()
    casts: collections.Counter[str] = collections.Counter()

    class Census(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
            out = func(*args, **(kwargs or {}))
            name = func.__name__.split(".")[0]
            if name in views:
                return out
            calls[name] += 1
            outs = out if isinstance(out, (tuple, list)) else (out,)
            written[name] += sum(o.numel() * o.element_size() for o in outs
                                 if isinstance(o, torch.Tensor))  # fmt: skip
            if name == "_to_copy" and isinstance(args[0], torch.Tensor):
                casts[f"{tuple(args[0].shape)} {args[0].dtype} -> {out.dtype}"] += 1
            return out

    runner = Runner("walker", "cpu", variant, torch.device("cpu"), 0)
    runner.run(2)
    with naive_patches(variant == "naive"), Census():
        runner.trainer.update(runner.batch)
    total = sum(written.values())
    return {
        "variant": variant, "aten_calls_per_update": sum(calls.values()),
        "mb_written_per_update": round(total / 1e6, 1),
        "top_ops_by_bytes_written": [
            {"op": k, "calls": calls[k], "mb": round(v / 1e6, 2), "pct": round(100 * v / total, 1)}
            for k, v in written.most_common(top)
        ],
        "casts": [{"cast": k, "calls": v} for k, v in casts.most_common(top)],
    }


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
    parser.add_argument("--fb-only", action="store_true",
                        help="Only the FB update: torch.profiler and op census, fast and naive.")
    parser.add_argument("--fb-updates", type=int, default=6)
    parser.add_argument("--targets", default=",".join(ROOTS),
                        help="comma-separated py-spy targets (default: all)")
    args = parser.parse_args()
    targets = [t for t in args.targets.split(",") if t]
    unknown = sorted(set(targets) - set(ROOTS))
    if unknown or not targets:
        parser.error(f"--targets: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(ROOTS)}")
    import torch

    torch.set_num_threads(1)
    if args.fb_only:
        report = {"benchmark": "fb_update_profile", "command": command(),
                  "machine": machine_info(torch_threads=1)}  # fmt: skip
        for variant in ("fast", "naive"):
            report[f"torch_profiler_{variant}"] = fb_update_profile(args.fb_updates, variant=variant)
            report[f"census_{variant}"] = fb_update_census(variant)
        report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        write_report(args.out, report)
        return
    if args.target == "wrapper":
        wrapper_loop(args.steps)
        return
    if args.target == "vector_workers2":
        vector_loop(args.steps)
        return
    if args.target is not None:
        opti_loop(args.opti_steps, 1 if args.target == "opti_every_step" else 10)
        return
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        raise SystemExit("py-spy not found: pip install py-spy (into this venv).")
    report: dict = {"benchmark": "profile_hot_paths", "command": command(),
                    "machine": machine_info(torch_threads=1), "profiles": {}}
    for target in targets:
        roots = ROOTS[target]
        with tempfile.TemporaryDirectory() as tmp:
            raw = Path(tmp) / "raw.txt"
            start = time.perf_counter()
            sub = ["--subprocesses"] if target in WORKER_ROOTS else []
            subprocess.run([spy, "record", "--native", *sub, "--format", "raw", "-r",
                            str(args.rate), "-o", str(raw), "--", sys.executable, __file__,
                            "--target", target, "--steps", str(args.steps), "--opti-steps",
                            str(args.opti_steps)], check=True, capture_output=True)  # fmt: skip
            summary = summarize(raw, roots)
            if target in WORKER_ROOTS:
                summary["worker_process"] = summarize(raw, WORKER_ROOTS[target])
        summary["wall_s"] = round(time.perf_counter() - start, 1)
        report["profiles"][target] = summary
        print(target, summary["inclusive"][:8], flush=True)
    if set(targets) == set(ROOTS):  # the full profile also has the FB update's
        report["fb_update_torch_profiler"] = fb_update_profile()
    report["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    write_report(args.out, report)


if __name__ == "__main__":
    main()
