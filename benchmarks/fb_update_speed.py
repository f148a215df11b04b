"""Updates per second of ``FBTrainer.update`` for each domain's preset, per speed option.

Variants (all on random tensors of the domain's dimensions; the update is data-independent in
cost):

* ``naive``: fp32, eager, looped F ensemble (a python loop over heads), foreach Adam, dense
  N x N FB and orthonormality losses, F weight gradients computed in the actor's backward (see
  :func:`naive_patches`).
* ``fast``: the default path (``FBConfig`` defaults: batched ensemble, fused Adam,
  ``amp="auto"``, the losses read through M's factors), no compile.
* ``fast_fp32`` / ``fast_bf16``: the fast path with ``amp`` forced to "off" / "bf16".
* ``compiled``: the fast path with ``compile=True`` (compile time reported separately).

Timing: after ``--warmup`` updates, ``--updates`` updates are timed in ``--repeats`` chunks and
the median chunk rate is reported (robust to other processes on a shared machine). Variants are
measured in round-robin order, repeat by repeat, so slow phases of the machine hit all of them.
Each chunk is timed twice: wall clock (``updates_per_s``) and this thread's CPU time
(``updates_per_cpu_s``, which leaves out the time the thread waited for a core while other
processes ran; with ``--threads 1`` the two agree on an idle machine).

Usage::

    python benchmarks/fb_update_speed.py --domains walker cheetah --updates 200
    python benchmarks/fb_update_speed.py --sizes cpu paper --variants naive fast compiled
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from _cpu import machine_info as cpu_machine_info
from _cpu import runnable_tasks
from _report import command, write_report

import torch

from bfm_gym.models.fb import FBConfig, FBTrainer, free_cpu_cores, networks
from bfm_gym.models.fb.agent import FBAgent
from bfm_gym.models.fb.replay import TransitionBatch
from bfm_gym.models.runtime import cpu_has_native_bf16, resolve_amp, resolve_device

DIMS = {"walker": (24, 6), "cheetah": (17, 6), "quadruped": (78, 12), "point_mass_maze": (4, 2)}
VARIANTS = {
    "naive": {"ensemble_mode": "looped", "fused_adam": False, "amp": "off", "compile": False},
    "fast": {},
    "fast_fp32": {"amp": "off"},
    "fast_bf16": {"amp": "bf16"},
    "compiled": {"compile": True},
}


@contextlib.contextmanager
def naive_patches(enabled: bool) -> Iterator[None]:
    """What a plain (metamotivo-style) port does differently from the fast path, beyond config:

    * ``networks.Tanh`` calls ATen's ``torch.tanh`` (so does the fast path now; kept so that
      the baseline stays the same if the fast path's tanh changes again);
    * the TD3 actor loss calls F with its live weights, so the actor's backward also computes
      (and then discards) F's weight gradients, as metamotivo's ``update_td3_actor`` does;
    * LayerNorm and tanh run as two modules (the fast path fuses them,
      ``networks._NormTanhSequential``);
    * the FB and orthonormality losses form the N x N matrices ``M = F^T B`` and ``B B^T``
      (``FBAgent._fb_losses_eager``, as metamotivo does; set in :class:`Runner`).
    """
    if not enabled:
        yield
        return
    tanh, frozen = networks.Tanh.forward, FBAgent._frozen_forward_map
    fused = networks._NormTanhSequential.forward
    networks.Tanh.forward = lambda self, x: torch.tanh(x)  # type: ignore[method-assign]
    networks._NormTanhSequential.forward = torch.nn.Sequential.forward  # type: ignore[method-assign]
    FBAgent._frozen_forward_map = lambda self, obs, action, z: self.model.forward_map(
        obs, action, z
    )  # type: ignore[method-assign]
    try:
        yield
    finally:
        networks.Tanh.forward = tanh  # type: ignore[method-assign]
        networks._NormTanhSequential.forward = fused  # type: ignore[method-assign]
        FBAgent._frozen_forward_map = frozen  # type: ignore[method-assign]


class Runner:
    """One trainer and a fixed random batch; :meth:`run` times ``n`` updates."""

    def __init__(
        self, domain: str, size: str, variant: str, device: torch.device, seed: int
    ) -> None:
        self.variant = variant
        obs_dim, action_dim = DIMS[domain]
        self.config = FBConfig.preset(domain, size, **VARIANTS[variant])  # type: ignore[arg-type]
        self.trainer = FBTrainer(
            self.config, obs_dim, action_dim, device=device, seed=seed, threads=None
        )
        if variant == "naive":  # dense N x N losses (see naive_patches)
            agent = self.trainer.agent
            agent.factored_loss = False
            agent._fb_losses = agent._fb_losses_eager  # type: ignore[method-assign]
        g = torch.Generator(device=device).manual_seed(seed)
        n = self.config.batch_size
        self.batch = TransitionBatch(
            torch.randn(n, obs_dim, generator=g, device=device),
            torch.rand(n, action_dim, generator=g, device=device) * 2 - 1,
            torch.randn(n, obs_dim, generator=g, device=device),
            torch.zeros(n, 1, device=device),
        )
        self.device = device
        self.rates: list[float] = []
        self.cpu_rates: list[float] = []  # per second of this thread's CPU time
        self.last_cpu_s = float("nan")
        self.last_loss = float("nan")

    def _sync(self, metrics: dict[str, torch.Tensor]) -> None:
        self.last_loss = float(metrics["fb_loss"])  # forces completion (CPU and CUDA)

    def run(self, n: int) -> float:
        with naive_patches(self.variant == "naive"):
            start, cpu_start = time.perf_counter(), time.thread_time()
            metrics: dict[str, torch.Tensor] = {}
            for _ in range(n):
                metrics = self.trainer.update(self.batch)
            self._sync(metrics)
            wall = time.perf_counter() - start
            self.last_cpu_s = time.thread_time() - cpu_start
            return wall


def machine_info(device: torch.device, threads: int) -> dict[str, object]:
    info: dict[str, object] = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else os.cpu_count(),
        "free_cpu_cores_at_start": free_cpu_cores(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "torch_threads": threads,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_native_bf16": cpu_has_native_bf16(),
        "device": str(device),
        "amp_auto_resolves_to": str(resolve_amp("auto", device)),
        **cpu_machine_info(),  # cpu_kind, model, caches, load and runnable tasks at start
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--domains", nargs="+", default=list(DIMS), choices=list(DIMS))
    parser.add_argument("--sizes", nargs="+", default=["cpu"], choices=["cpu", "paper", "tiny"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument(
        "--updates",
        type=int,
        default=100,
        help="timed updates per variant (split in --repeats chunks)",
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=5,
        help="timed chunks per variant; the median chunk rate is reported",
    )
    parser.add_argument(
        "--warmup", type=int, default=5, help="untimed updates first (compile happens here)"
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--threads", default="auto", help="torch threads on CPU: an int or 'auto' (free cores)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/fb_update_speed.json"))
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    threads = free_cpu_cores() if args.threads == "auto" else int(args.threads)
    torch.set_num_threads(threads)
    machine = machine_info(device, threads)  # load and runnable tasks before the runs
    chunk = max(1, args.updates // args.repeats)
    results: list[dict[str, object]] = []
    for size in args.sizes:
        for domain in args.domains:
            runners: dict[str, Runner] = {}
            for variant in args.variants:
                runner = Runner(domain, size, variant, device, args.seed)
                compile_s = runner.run(args.warmup)
                runner.compile_or_warmup_s = compile_s  # type: ignore[attr-defined]
                runners[variant] = runner
            for _ in range(args.repeats):  # round robin
                for runner in runners.values():
                    runner.rates.append(chunk / runner.run(chunk))
                    runner.cpu_rates.append(chunk / runner.last_cpu_s)
            naive = statistics.median(runners["naive"].rates) if "naive" in runners else None
            fp32 = statistics.median(runners["fast_fp32"].rates) if "fast_fp32" in runners else None
            naive_cpu = (
                statistics.median(runners["naive"].cpu_rates) if "naive" in runners else None
            )
            for variant, runner in runners.items():
                rate = statistics.median(runner.rates)
                cpu_rate = statistics.median(runner.cpu_rates)
                row = {
                    "size": size, "domain": domain, "variant": variant, "config": VARIANTS[variant],
                    "batch_size": runner.config.batch_size, "f_hidden_dim": runner.config.f_hidden_dim, "z_dim": runner.config.z_dim,
                    "updates_per_s": rate, "updates_per_s_chunks": runner.rates,
                    "updates_per_cpu_s": cpu_rate, "updates_per_cpu_s_chunks": runner.cpu_rates,
                    "speedup_vs_naive_cpu_time": cpu_rate / naive_cpu if naive_cpu else None,
                    "warmup_s": runner.compile_or_warmup_s,  # type: ignore[attr-defined]
                    "speedup_vs_naive": rate / naive if naive else None,
                    "speedup_vs_fast_fp32": rate / fp32 if fp32 else None,
                    "final_fb_loss": runner.last_loss,
                }  # fmt: skip
                results.append(row)
                print(
                    f"{size:5s} {domain:16s} {variant:10s} {rate:8.2f} upd/s"
                    + (f"  x{rate / naive:.2f} vs naive" if naive else "")
                    + (f" (CPU time x{cpu_rate / naive_cpu:.2f})" if naive_cpu else "")
                    + f"  (warmup {row['warmup_s']:.1f}s)",
                    flush=True,
                )
    report = {
        "benchmark": "fb_update_speed",
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "command": command(),
        "machine": machine,
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        "runnable_tasks_at_end": runnable_tasks(),
        "results": results,
    }
    write_report(args.out, report)
    return report


if __name__ == "__main__":
    main()
