"""Is bfm_gym's FB update the same as metamotivo's? One update, same weights, batch and noise.

facebookresearch/metamotivo (``metamotivo/fb/agent.py``, ``model.py``, ``nn_models.py``) is the
FB implementation behind the published DMC numbers (``examples/fb_train_dmc.py``). This script
loads its modules from a local copy given on the command line (nothing of it is vendored here),
builds both implementations on the same configuration, copies bfm_gym's initial weights into
metamotivo's networks, and runs one update of each on the same batch of real walker transitions
with the same random draws:

* z ~ proj(N(0, I)), the goal permutation and the goal mask of ``sample_mixed_z``;
* the target-action noise (FB loss) and the policy noise (actor loss).

metamotivo draws these inside its ``update``; the script runs that ``update`` unmodified and
answers its calls to ``torch.randn`` / ``torch.randperm`` / ``torch.rand`` and to
``nn_models._standard_normal`` with bfm_gym's draws (the calls are checked in order and by shape,
so an extra or missing draw is an error). It then compares: the FB loss (and its diagonal /
off-diagonal terms), the orthonormality loss, the actor loss, the gradients each optimiser
steps with, and every online and target parameter after the update; then ``--steps`` updates
in a row (a fresh batch and fresh draws each step) to see whether differences grow.

Each deliberate difference of bfm_gym's default path is measured against the fp32 reference:
bf16 autocast (``amp="auto"`` picks it on CPUs with native bf16), the CPU tanh written as
2 sigmoid(2x) - 1, fused Adam, the target ``mean_k(F_k)^T B`` (one matmul instead of E), the
Polyak update as ``lerp``; plus the weight initialisation (checked as a distribution: every
weight matrix of both implementations at init should be orthogonal times the same gain).

With ``--fixture PATH`` the tiny-config inputs and metamotivo's outputs are written to
``PATH.safetensors`` + ``PATH.json`` for ``tests/models/test_fb_reference.py``.

Getting metamotivo (any checkout of the repository; the script reads ``metamotivo/`` in it, or
extracts it with ``git archive`` when the path is a bare git directory)::

    git clone https://github.com/facebookresearch/metamotivo /tmp/metamotivo   # commit ff8dcc5

Usage::

    OMP_NUM_THREADS=1 python benchmarks/fb_reference_check.py --metamotivo /tmp/metamotivo \\
        --sizes tiny cpu paper --fixture tests/models/data/fb_reference_update
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import io
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from _report import command, machine, write_report

import numpy as np
import torch
from safetensors.torch import save_file

import bfm_gym.models.fb.trainer as trainer_module
from bfm_gym.models.fb import FBConfig, FBTrainer, networks
from bfm_gym.models.fb.agent import UpdateNoise, draw_noise
from bfm_gym.models.fb.replay import TransitionBatch
from bfm_gym.models.runtime import cpu_has_native_bf16

OBS_DIM, ACTION_DIM = 24, 6  # dm_control walker, flat observation
LOSS_RTOL = 1e-5  # fp32: losses agree to a few ulp of their magnitude
PARAM_ATOL = 1e-6  # fp32: parameters after the update (lr 1e-4..1e-3 per Adam step)
GRAD_RTOL = 1e-4  # fp32: |g_ours - g_ref| <= GRAD_RTOL * max|g_ref| of the tensor
FP32_TOL = (LOSS_RTOL, PARAM_ATOL, GRAD_RTOL)
FP64_TOL = (1e-12, 1e-12, 1e-10)  # the same three in float64 arithmetic
FLOOR_FACTOR = (
    2.0  # fp32 bfm_gym-vs-metamotivo may be this many times each side's own fp32 rounding
)

# ------------------------------------------------------------------------------------------------
# metamotivo, loaded from a local copy
# ------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Reference:
    """metamotivo's modules and where they came from."""

    agent_module: Any
    nn_models: Any
    source: str
    commit: str | None


def load_metamotivo(path: str) -> Reference:
    """Import ``metamotivo`` from a checkout (or a bare git directory, via ``git archive``)."""
    root = Path(path).expanduser().resolve()
    commit = None
    if not (root / "metamotivo" / "fb" / "agent.py").is_file():
        try:
            commit = subprocess.run(
                ["git", "--git-dir", str(root), "rev-parse", "HEAD"],
                check=True, capture_output=True, text=True,
            ).stdout.strip()  # fmt: skip
        except (OSError, subprocess.CalledProcessError) as err:
            raise SystemExit(
                f"--metamotivo {path}: no metamotivo/fb/agent.py there and not a git directory; "
                "pass a checkout of https://github.com/facebookresearch/metamotivo"
            ) from err
        tmp = Path(tempfile.mkdtemp(prefix="metamotivo_"))
        archive = subprocess.run(
            ["git", "--git-dir", str(root), "archive", "HEAD", "metamotivo"],
            check=True, capture_output=True,
        ).stdout  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(tmp)], input=archive, check=True)
        root = tmp
    else:
        with contextlib.suppress(OSError, subprocess.CalledProcessError):
            commit = subprocess.run(
                ["git", "-C", str(root), "rev-parse", "HEAD"],
                check=True, capture_output=True, text=True,
            ).stdout.strip()  # fmt: skip
    if "metamotivo" in sys.modules:
        raise SystemExit("a module named metamotivo is already imported; run in a fresh process")
    sys.path.insert(0, str(root))
    try:
        agent_module = importlib.import_module("metamotivo.fb.agent")
        nn_models = importlib.import_module("metamotivo.nn_models")
    finally:
        sys.path.remove(str(root))
    return Reference(agent_module, nn_models, str(root), commit)


def reference_agent(ref: Reference, config: FBConfig) -> Any:
    """metamotivo's ``FBAgent`` configured as bfm_gym's ``config`` (DMC example settings)."""
    c = config
    kwargs = {
        "model": {
            "obs_dim": OBS_DIM, "action_dim": ACTION_DIM, "device": "cpu", "norm_obs": False,
            "seq_length": 1, "actor_std": c.actor_std,
            "archi": {
                "z_dim": c.z_dim, "norm_z": True,
                "f": {"hidden_dim": c.f_hidden_dim, "model": "simple", "hidden_layers": c.f_hidden_layers,
                      "embedding_layers": c.f_embedding_layers, "num_parallel": c.ensemble,
                      "ensemble_mode": "batch"},
                "b": {"hidden_dim": c.b_hidden_dim, "hidden_layers": c.b_hidden_layers, "norm": True},
                "actor": {"hidden_dim": c.actor_hidden_dim, "model": "simple",
                          "hidden_layers": c.actor_hidden_layers, "embedding_layers": c.actor_embedding_layers},
            },
        },
        "train": {
            "lr_f": c.lr_f, "lr_b": c.lr_b, "lr_actor": c.lr_actor, "weight_decay": 0.0,
            "clip_grad_norm": 0.0, "fb_target_tau": c.tau, "ortho_coef": c.ortho_coef,
            "train_goal_ratio": c.train_goal_ratio, "fb_pessimism_penalty": c.fb_pessimism,
            "actor_pessimism_penalty": c.actor_pessimism, "stddev_clip": c.stddev_clip,
            "q_loss_coef": 0.0, "batch_size": c.batch_size, "discount": c.gamma,
            "use_mix_rollout": False, "update_z_every_step": 150, "z_buffer_size": 10000,
        },
        "cudagraphs": False,
        "compile": False,
    }  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):  # it prints "compile False" etc.
        return ref.agent_module.FBAgent(**kwargs)


# ------------------------------------------------------------------------------------------------
# Weight mapping: bfm_gym name -> metamotivo name (same shapes; the ensemble layout is the same)
# ------------------------------------------------------------------------------------------------

_NETS = (
    ("forward_map.", "_forward_map."),
    ("backward_map.", "_backward_map."),
    ("actor.", "_actor."),
)
_LAYERS = (("embed_sz.", "embed_z."), ("embed_sa.", "embed_sa."), ("embed_s.", "embed_s."),
           ("net.", "net."))  # fmt: skip
_HEADS = {
    "forward_map.": ("mlp.", "Fs."),
    "actor.": ("mlp.", "policy."),
    "backward_map.": ("net.", "net."),
}


def their_name(ours: str) -> str:
    """metamotivo's parameter name for one of bfm_gym's (online or target).

    ``forward_map.{embed_sa, embed_sz, mlp}`` -> ``_forward_map.{embed_sa, embed_z, Fs}``,
    ``actor.{embed_s, embed_sz, mlp}`` -> ``_actor.{embed_s, embed_z, policy}``,
    ``backward_map.net`` -> ``_backward_map.net``; ``target_X`` -> ``_target_X``.
    """
    target = ours.startswith("target_")
    rest = ours[len("target_") :] if target else ours
    for net, their_net in _NETS:
        if rest.startswith(net):
            tail = rest[len(net) :]
            for mine, theirs in (*_LAYERS, _HEADS[net]):
                if tail.startswith(mine):
                    return ("_target" if target else "") + their_net + theirs + tail[len(mine) :]
    raise KeyError(f"no metamotivo counterpart for {ours!r}")


def our_state(trainer: FBTrainer) -> dict[str, torch.Tensor]:
    """Online and target parameters of bfm_gym's trainer (no ``cov`` buffers: inference only)."""
    state = {k: v for k, v in trainer.model.state_dict().items() if not k.startswith("cov")}
    state.update(trainer.agent.target_state_dict())
    return {k: v.detach().clone() for k, v in state.items()}


def _inverse_names(trainer_names: list[str]) -> dict[str, str]:
    return {their_name(k): k for k in trainer_names}


def their_state(agent: Any, names: dict[str, str]) -> dict[str, torch.Tensor]:
    """metamotivo's parameters under bfm_gym's names (``names``: theirs -> ours; all must map)."""
    theirs = agent._model.state_dict()
    unmapped = sorted(set(theirs) - set(names))
    if unmapped:
        raise KeyError(f"metamotivo parameters with no bfm_gym counterpart: {unmapped}")
    return {names[k]: v.detach().clone() for k, v in theirs.items()}


def load_into_reference(agent: Any, state: dict[str, torch.Tensor]) -> dict[str, str]:
    """Copy bfm_gym's weights (online and targets) into metamotivo's agent, in place.

    Returns:
        metamotivo name -> bfm_gym name, for every parameter (the mapping is checked both ways).
    """
    theirs = agent._model.state_dict()
    mapped = {their_name(k): v for k, v in state.items()}
    missing, extra = sorted(set(theirs) - set(mapped)), sorted(set(mapped) - set(theirs))
    if missing or extra:
        raise KeyError(f"weight mapping incomplete: missing {missing}, extra {extra}")
    for k, v in mapped.items():
        if theirs[k].shape != v.shape:
            raise ValueError(
                f"{k}: metamotivo {tuple(theirs[k].shape)} vs bfm_gym {tuple(v.shape)}"
            )
    agent._model.load_state_dict(mapped)  # copies in place: the optimisers keep their params
    return _inverse_names(list(state))


def load_into_ours(trainer: FBTrainer, state: dict[str, torch.Tensor]) -> None:
    """Set bfm_gym's online and target weights from ``state`` (as :func:`our_state` returns)."""
    online = {k: v for k, v in state.items() if not k.startswith("target_")}
    trainer.model.load_state_dict({**trainer.model.state_dict(), **online})
    trainer.agent.load_target_state_dict(
        {k: v for k, v in state.items() if k.startswith("target_")}
    )


# ------------------------------------------------------------------------------------------------
# Running one update on each side
# ------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def injected_draws(ref: Reference, noise: UpdateNoise) -> Iterator[list[str]]:
    """Answer metamotivo's random calls, in order, with bfm_gym's draws for this update."""
    queue: list[tuple[str, torch.Tensor]] = [
        ("randn", noise.z), ("randperm", noise.goal_index), ("rand", noise.goal_mask),
        ("standard_normal", noise.next_action), ("standard_normal", noise.actor_action),
    ]  # fmt: skip
    calls: list[str] = []

    def answer(kind: str) -> Callable[..., torch.Tensor]:
        def fn(*args: Any, **kwargs: Any) -> torch.Tensor:
            if not queue:
                raise AssertionError(f"metamotivo drew an unexpected extra {kind}{args}")
            want, value = queue.pop(0)
            shape = args[0] if args else kwargs.get("size")
            if kind == "randperm":
                shape = (int(shape),)
            if want != kind or tuple(shape) != tuple(value.shape):
                raise AssertionError(
                    f"metamotivo drew {kind}{tuple(shape)}; expected {want}{tuple(value.shape)}"
                )
            calls.append(f"{kind}{tuple(shape)}")
            return value.clone()

        return fn

    saved = (torch.randn, torch.randperm, torch.rand, ref.nn_models._standard_normal)
    torch.randn, torch.randperm, torch.rand = answer("randn"), answer("randperm"), answer("rand")
    ref.nn_models._standard_normal = answer("standard_normal")
    try:
        yield calls
    finally:
        torch.randn, torch.randperm, torch.rand, ref.nn_models._standard_normal = saved
    if queue:
        raise AssertionError(f"metamotivo did not use the draws {[k for k, _ in queue]}")


@contextlib.contextmanager
def grads_at_step(optimizers: dict[str, torch.optim.Optimizer], names: dict[int, str],
                  out: dict[str, torch.Tensor]) -> Iterator[None]:  # fmt: skip
    """Record the gradient of every parameter when its optimiser steps."""
    saved = {}
    for key, opt in optimizers.items():
        original = opt.step

        def step(
            *args: Any, _opt: torch.optim.Optimizer = opt, _orig: Any = original, **kw: Any
        ) -> Any:
            for group in _opt.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        out[names[id(p)]] = p.grad.detach().clone()
            return _orig(*args, **kw)

        saved[key] = original
        opt.step = step  # type: ignore[method-assign]
    try:
        yield
    finally:
        for key, opt in optimizers.items():
            opt.step = saved[key]  # type: ignore[method-assign]


def run_ours(trainer: FBTrainer, batch: TransitionBatch, noise: UpdateNoise) -> dict[str, Any]:
    """One ``FBTrainer.update`` with the given draws: metrics, gradients, parameters after."""
    names = {id(p): f"{k}" for k, p in trainer.model.named_parameters()}
    grads: dict[str, torch.Tensor] = {}
    original = trainer_module.draw_noise
    trainer_module.draw_noise = lambda *a, **k: noise
    try:
        with grads_at_step({"fb": trainer.agent.fb_optimizer, "actor": trainer.agent.actor_optimizer},
                           names, grads):  # fmt: skip
            metrics = trainer.update(batch)
    finally:
        trainer_module.draw_noise = original
    losses = {k: float(v) for k, v in metrics.items()}
    return {"losses": losses, "grads": grads, "params": our_state(trainer)}


def run_theirs(ref: Reference, agent: Any, names: dict[str, str], batch: TransitionBatch,
               noise: UpdateNoise) -> dict[str, Any]:  # fmt: skip
    """One unmodified metamotivo ``FBAgent.update`` on the batch, with bfm_gym's draws."""
    ids = {id(p): names[k] for k, p in agent._model.named_parameters()}
    grads: dict[str, torch.Tensor] = {}
    sample = {
        "observation": batch.obs.clone(), "action": batch.action.clone(),
        "next": {"observation": batch.next_obs.clone(), "terminated": batch.terminated.bool().clone()},
    }  # fmt: skip

    class Buffer:
        def sample(self, n: int) -> dict[str, Any]:
            if n != batch.obs.shape[0]:
                raise AssertionError(
                    f"metamotivo asked for {n} transitions, the batch has {batch.obs.shape[0]}"
                )
            return sample

    opts = {
        "f": agent.forward_optimizer,
        "b": agent.backward_optimizer,
        "pi": agent.actor_optimizer,
    }
    with injected_draws(ref, noise) as calls, grads_at_step(opts, ids, grads):
        metrics = agent.update({"train": Buffer()}, step=0)
    m = {k: float(v.detach().mean()) for k, v in metrics.items()}
    losses = {
        # metamotivo's "fb_loss" already includes ortho_coef * orth_loss; bfm_gym's does not
        "fb_loss": m["fb_diag"] + m["fb_offdiag"], "fb_diag": m["fb_diag"], "fb_offdiag": m["fb_offdiag"],
        "ortho_loss": m["orth_loss"], "ortho_diag": m["orth_loss_diag"], "ortho_offdiag": m["orth_loss_offdiag"],
        "actor_loss": m["actor_loss"], "q": m["q"], "target_m": m["target_M"],
        "total_fb_plus_ortho": m["fb_loss"],
    }  # fmt: skip
    return {"losses": losses, "grads": grads, "params": their_state(agent, names), "draws": calls}


# ------------------------------------------------------------------------------------------------
# Comparison
# ------------------------------------------------------------------------------------------------

_LOSS_KEYS = ("fb_loss", "fb_diag", "fb_offdiag", "ortho_loss", "ortho_diag", "ortho_offdiag",
              "actor_loss", "q", "target_m")  # fmt: skip


def _group(name: str) -> str:
    if name.startswith("target_forward_map"):
        return "F_target"
    if name.startswith("target_backward_map"):
        return "B_target"
    return {"forward_map": "F", "backward_map": "B", "actor": "pi"}[name.split(".")[0]]


def compare(ours: dict[str, Any], theirs: dict[str, Any], before: dict[str, torch.Tensor],
            tol: tuple[float, float, float] = FP32_TOL) -> dict[str, Any]:  # fmt: skip
    """Max abs / relative differences per quantity, with pass/fail at ``tol`` (loss rtol,
    parameter atol, gradient rtol; see :data:`FP32_TOL`)."""
    loss_rtol, param_atol, grad_rtol = tol
    losses = {}
    for k in _LOSS_KEYS:
        a, b = ours["losses"][k], theirs["losses"][k]
        losses[k] = {"ours": a, "metamotivo": b, "abs_diff": abs(a - b),
                     "rel_diff": abs(a - b) / max(abs(b), 1e-12)}  # fmt: skip
    params: dict[str, dict[str, float]] = {}
    for name, theirs_p in theirs["params"].items():
        g = _group(name)
        diff = float((ours["params"][name] - theirs_p).abs().max())
        step = float((theirs_p - before[name]).abs().max())
        row = params.setdefault(g, {"max_abs_diff": 0.0, "max_abs_update": 0.0})
        row["max_abs_diff"] = max(row["max_abs_diff"], diff)
        row["max_abs_update"] = max(row["max_abs_update"], step)
    for g, row in params.items():
        keys = [k for k in theirs["params"] if _group(k) == g]
        d_ours = torch.cat([(ours["params"][k] - before[k]).flatten() for k in keys])
        d_ref = torch.cat([(theirs["params"][k] - before[k]).flatten() for k in keys])
        # share of parameters whose update differs by more than half the largest step (~lr)
        row["frac_update_off_by_half_step"] = float(
            ((d_ours - d_ref).abs() > 0.5 * d_ref.abs().max()).float().mean()
        )
    grads: dict[str, dict[str, float]] = {}
    for name, gt in theirs["grads"].items():
        g = _group(name)
        go = ours["grads"][name]
        scale = float(gt.abs().max())
        row = grads.setdefault(g, {"max_abs_diff": 0.0, "max_rel_diff": 0.0})
        d = float((go - gt).abs().max())
        row["max_abs_diff"] = max(row["max_abs_diff"], d)
        row["max_rel_diff"] = max(row["max_rel_diff"], d / max(scale, 1e-30))
    for g, row in grads.items():
        keys = [k for k in theirs["grads"] if _group(k) == g]
        a = torch.cat([ours["grads"][k].flatten() for k in keys]).double()
        b = torch.cat([theirs["grads"][k].flatten() for k in keys]).double()
        row["cosine"] = float(a @ b / (a.norm() * b.norm()).clamp_min(1e-300))
    missing_grads = sorted(set(ours["grads"]) ^ set(theirs["grads"]))
    passed = (
        all(v["abs_diff"] <= loss_rtol * max(1.0, abs(v["metamotivo"])) for v in losses.values())
        and all(v["max_abs_diff"] <= param_atol for v in params.values())
        and all(v["max_rel_diff"] <= grad_rtol for v in grads.values())
        and not missing_grads
    )
    return {"pass": passed, "losses": losses, "params": params, "grads": grads,
            "grads_only_on_one_side": missing_grads}  # fmt: skip


def summary(c: dict[str, Any]) -> dict[str, float]:
    """The few numbers that say how far apart two runs are."""
    return {
        "max_loss_rel_diff": max(v["rel_diff"] for v in c["losses"].values()),
        "max_param_abs_diff": max(v["max_abs_diff"] for v in c["params"].values()),
        "max_grad_rel_diff": max(v["max_rel_diff"] for v in c["grads"].values()),
        "max_param_abs_update": max(v["max_abs_update"] for v in c["params"].values()),
        "max_frac_update_off_by_half_step": max(
            v["frac_update_off_by_half_step"] for v in c["params"].values()
        ),
        "min_grad_cosine": min(v["cosine"] for v in c["grads"].values()),
    }


# ------------------------------------------------------------------------------------------------
# Data: real walker transitions (random actions)
# ------------------------------------------------------------------------------------------------


def walker_transitions(n: int, seed: int) -> dict[str, np.ndarray]:
    """``n`` dm_control walker transitions under uniform random actions (flat observations).

    Every 16th transition is marked terminated (DMC never terminates; this exercises the
    ``gamma * (1 - terminated)`` path of both implementations).
    """
    from dm_control import suite

    env = suite.load("walker", "walk", task_kwargs={"random": seed},
                     environment_kwargs={"flat_observation": True})  # fmt: skip
    rng = np.random.default_rng(seed)
    obs, act, nxt = [], [], []
    ts = env.reset()
    while len(obs) < n:
        a = rng.uniform(-1, 1, ACTION_DIM).astype(np.float32)
        o = ts.observation["observations"].astype(np.float32)
        ts = env.step(a)
        obs.append(o)
        act.append(a)
        nxt.append(ts.observation["observations"].astype(np.float32))
        if ts.last():
            ts = env.reset()
    term = np.zeros((n, 1), np.float32)
    term[::16] = 1.0
    return {
        "obs": np.stack(obs),
        "action": np.stack(act),
        "next_obs": np.stack(nxt),
        "terminated": term,
    }


def batch_from(data: dict[str, np.ndarray], rows: np.ndarray) -> TransitionBatch:
    return TransitionBatch(
        *(torch.from_numpy(data[k][rows]) for k in ("obs", "action", "next_obs", "terminated"))
    )


# ------------------------------------------------------------------------------------------------
# Checks
# ------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def default_dtype(dtype: torch.dtype) -> Iterator[None]:
    """Build and run a side in ``dtype``: metamotivo creates its discount tensor in the default dtype."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(old)


@contextlib.contextmanager
def keep_float64() -> Iterator[None]:
    """``Tensor.float()`` leaves float64 tensors as they are.

    bfm_gym's agent upcasts M, the target M and B with ``.float()`` before the losses (so that
    bf16 autocast outputs meet fp32 losses); in an fp64 run that would round them to fp32.
    """
    original = torch.Tensor.float

    def as_float(self: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
        return self if self.dtype == torch.float64 else original(self, *args, **kwargs)

    torch.Tensor.float = as_float  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.Tensor.float = original  # type: ignore[method-assign]


def _cast(x: Any, dtype: torch.dtype) -> Any:
    """A batch or noise tuple with its floating tensors in ``dtype`` (indices stay int64)."""
    return type(x)(*(t.to(dtype) if t.is_floating_point() else t for t in x))


def prepare(config: FBConfig, data: dict[str, np.ndarray], seed: int,
            ) -> tuple[dict[str, torch.Tensor], TransitionBatch, UpdateNoise]:  # fmt: skip
    """bfm_gym's initial weights (seeded), a batch of real transitions and one update's draws."""
    state = our_state(FBTrainer(config, OBS_DIM, ACTION_DIM, device="cpu", seed=seed, threads=None))
    rows = np.random.default_rng(seed).choice(len(data["obs"]), config.batch_size, replace=False)
    noise = draw_noise(
        config, ACTION_DIM, torch.Generator().manual_seed(seed + 1), torch.device("cpu")
    )
    return state, batch_from(data, rows), noise


def new_ours(config: FBConfig, state: dict[str, torch.Tensor]) -> FBTrainer:
    """bfm_gym's trainer (in the current default dtype) holding ``state``."""
    trainer = FBTrainer(config, OBS_DIM, ACTION_DIM, device="cpu", seed=0, threads=None)
    load_into_ours(trainer, state)
    return trainer


def new_theirs(
    ref: Reference, config: FBConfig, state: dict[str, torch.Tensor]
) -> tuple[Any, dict[str, str]]:
    """metamotivo's agent (in the current default dtype) holding ``state``; and the name map."""
    agent = reference_agent(ref, config)
    return agent, load_into_reference(agent, state)


def side(ref: Reference, impl: str, config: FBConfig, state: dict[str, torch.Tensor], batch: TransitionBatch,
         noise: UpdateNoise, dtype: torch.dtype = torch.float32,
         patch: Callable[[], contextlib.AbstractContextManager[Any]] | None = None) -> dict[str, Any]:  # fmt: skip
    """One update of ``impl`` ("ours" or "metamotivo") from ``state`` in ``dtype``."""
    fp64 = keep_float64() if dtype == torch.float64 else contextlib.nullcontext()
    with default_dtype(dtype), fp64, patch() if patch else contextlib.nullcontext():
        if impl == "ours":
            return run_ours(new_ours(config, state), _cast(batch, dtype), _cast(noise, dtype))
        agent, names = new_theirs(ref, config, state)
        return run_theirs(ref, agent, names, _cast(batch, dtype), _cast(noise, dtype))


def one_update(ref: Reference, config: FBConfig, data: dict[str, np.ndarray], seed: int,
               patch: Callable[[], contextlib.AbstractContextManager[Any]] | None = None) -> dict[str, Any]:  # fmt: skip
    """Same weights, batch and draws, fp32 on both sides; ``patch`` changes bfm_gym's side only."""
    before, batch, noise = prepare(config, data, seed)
    theirs = side(ref, "metamotivo", config, before, batch, noise)
    ours = side(ref, "ours", config, before, batch, noise, patch=patch)
    return {"ours": ours, "theirs": theirs, "before": before, "batch": batch, "noise": noise,
            "comparison": compare(ours, theirs, before)}  # fmt: skip


def precision_check(
    ref: Reference, config: FBConfig, data: dict[str, np.ndarray], seed: int
) -> dict[str, Any]:
    """Both implementations in fp32 and in fp64 from the same weights, batch and draws.

    ``fp64``: bfm_gym vs metamotivo with float64 arithmetic (what is left is the objective, not
    rounding). ``rounding_floor_*``: each implementation's own fp32 run against its fp64 run, the
    size of fp32 rounding on this config; bfm_gym vs metamotivo in fp32 should not exceed it.
    """
    before, batch, noise = prepare(config, data, seed)
    runs = {(impl, str(dt).split(".")[-1]): side(ref, impl, config, before, batch, noise, dt)
            for impl in ("ours", "metamotivo") for dt in (torch.float32, torch.float64)}  # fmt: skip
    pairs = {
        "fp64_bfm_gym_vs_metamotivo": (("ours", "float64"), ("metamotivo", "float64")),
        "fp32_bfm_gym_vs_metamotivo": (("ours", "float32"), ("metamotivo", "float32")),
        "rounding_floor_metamotivo_fp32_vs_fp64": (
            ("metamotivo", "float32"),
            ("metamotivo", "float64"),
        ),
        "rounding_floor_bfm_gym_fp32_vs_fp64": (("ours", "float32"), ("ours", "float64")),
    }
    out: dict[str, Any] = {}
    for name, (a, b) in pairs.items():
        c = compare(runs[a], runs[b], before, FP64_TOL if name.startswith("fp64") else FP32_TOL)
        out[name] = {**summary(c), "losses_max_abs_diff": max(v["abs_diff"] for v in c["losses"].values()),
                     "pass": c["pass"]}  # fmt: skip
    out["fp64_pass"] = out["fp64_bfm_gym_vs_metamotivo"]["pass"]
    fp32 = out["fp32_bfm_gym_vs_metamotivo"]
    floors = [
        out["rounding_floor_metamotivo_fp32_vs_fp64"],
        out["rounding_floor_bfm_gym_fp32_vs_fp64"],
    ]
    keys = ("losses_max_abs_diff", "max_param_abs_diff", "max_grad_rel_diff")
    out["fp32_within_rounding_floor"] = all(
        fp32[k] <= FLOOR_FACTOR * max(f[k] for f in floors) + 1e-12 for k in keys
    )
    return out


def many_updates(ref: Reference, config: FBConfig, data: dict[str, np.ndarray], seed: int,
                 steps: int, dtype: torch.dtype = torch.float32) -> list[dict[str, float]]:  # fmt: skip
    """``steps`` updates in a row on both sides (fresh batch and draws each step)."""
    before, _, _ = prepare(config, data, seed)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    rows_out = []
    with (
        default_dtype(dtype),
        keep_float64() if dtype == torch.float64 else contextlib.nullcontext(),
    ):
        trainer = new_ours(config, before)
        agent, names = new_theirs(ref, config, before)
        for step in range(1, steps + 1):
            start = our_state(trainer)
            batch = _cast(
                batch_from(data, rng.choice(len(data["obs"]), config.batch_size, replace=False)),
                dtype,
            )
            noise = _cast(draw_noise(config, ACTION_DIM, gen, torch.device("cpu")), dtype)
            theirs = run_theirs(ref, agent, names, batch, noise)
            ours = run_ours(trainer, batch, noise)
            rows_out.append({"step": step, **summary(compare(ours, theirs, start))})
    return rows_out


@contextlib.contextmanager
def aten_tanh() -> Iterator[None]:
    """bfm_gym's embeddings with ``torch.tanh`` (as metamotivo) instead of 2 sigmoid(2x) - 1."""
    original = networks.Tanh.forward
    networks.Tanh.forward = lambda self, x: torch.tanh(x)  # type: ignore[method-assign]
    try:
        yield
    finally:
        networks.Tanh.forward = original  # type: ignore[method-assign]


def init_distribution(ref: Reference, config: FBConfig, seed: int) -> dict[str, Any]:
    """Both implementations' own initialisations: every weight matrix should be gain x orthogonal.

    Returns, per implementation, the set of gains found (singular values of each head's matrix)
    and the largest deviation from a constant spectrum; bias and LayerNorm values at init.
    """
    trainer = FBTrainer(config, OBS_DIM, ACTION_DIM, device="cpu", seed=seed, threads=None)
    torch.manual_seed(seed)
    agent = reference_agent(ref, config)
    out: dict[str, Any] = {}
    for side, named in (("bfm_gym", [(k, v) for k, v in our_state(trainer).items() if not k.startswith("target_")]),
                        ("metamotivo", [(k, v) for k, v in their_state(agent, _inverse_names(list(our_state(trainer)))).items()
                                        if not k.startswith("target_")])):  # fmt: skip
        gains: dict[str, float] = {}
        worst, nonzero_bias, ln_ok = 0.0, 0.0, True
        for name, w in named:
            w = w.detach().double()
            is_ln = any(name.endswith(f"{i}.weight") for i in (1,)) and (
                w.dim() == 1 or w.shape[-2] == 1
            )
            if name.endswith("bias"):
                nonzero_bias = max(nonzero_bias, float(w.abs().max()))
            elif is_ln:
                ln_ok = ln_ok and bool((w == 1).all())
            else:
                mats = w if w.dim() == 3 else w.unsqueeze(0)
                for m in mats:
                    s = torch.linalg.svdvals(m)
                    worst = max(worst, float((s.max() - s.min()) / s.max()))
                    gains[f"{_group(name)}:{name.split('.', 1)[1]}"] = round(float(s.mean()), 6)
        out[side] = {"gains": gains, "max_spectrum_spread": worst, "max_abs_bias": nonzero_bias,
                     "layernorm_weight_is_one": ln_ok}  # fmt: skip
    out["same_gains"] = out["bfm_gym"]["gains"] == out["metamotivo"]["gains"]
    return out


def target_aggregation_effect(
    trainer_config: FBConfig, data: dict[str, np.ndarray], seed: int
) -> float:
    """max |mean_k(F_k)^T B - mean_k(F_k^T B)| on a real batch (bfm_gym uses the first form)."""
    trainer = FBTrainer(trainer_config, OBS_DIM, ACTION_DIM, device="cpu", seed=seed, threads=None)
    batch = batch_from(data, np.arange(trainer_config.batch_size))
    with torch.no_grad():
        z = trainer.model.sample_z(
            trainer_config.batch_size, generator=torch.Generator().manual_seed(0)
        )
        f = trainer.agent.target_forward_map(batch.next_obs, batch.action, z)
        b = trainer.agent.target_backward_map(batch.next_obs)
        return float(((f.mean(0) @ b.T) - (f @ b.T).mean(0)).abs().max())


def polyak_effect(config: FBConfig, seed: int) -> float:
    """max |lerp(t, p, tau) - ((1 - tau) t + tau p)| over F and B after one perturbation."""
    trainer = FBTrainer(config, OBS_DIM, ACTION_DIM, device="cpu", seed=seed, threads=None)
    online = [p.detach() + 0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(i))
              for i, p in enumerate(trainer.agent._online)]  # fmt: skip
    a = [t.detach().clone() for t in trainer.agent._target]
    b = [t.detach().clone() for t in trainer.agent._target]
    torch._foreach_lerp_(a, online, config.tau)
    torch._foreach_mul_(b, 1 - config.tau)
    torch._foreach_add_(b, online, alpha=config.tau)
    return max(float((x - y).abs().max()) for x, y in zip(a, b, strict=True))


def check_size(
    ref: Reference, size: str, data: dict[str, np.ndarray], seed: int, steps: int
) -> dict[str, Any]:
    base = FBConfig.preset("walker", size, amp="off")
    t0 = time.perf_counter()
    main = one_update(ref, base, data, seed)
    result: dict[str, Any] = {
        "config": {k: base.to_dict()[k] for k in ("z_dim", "f_hidden_dim", "b_hidden_dim", "actor_hidden_dim",
                                                   "batch_size", "lr_f", "lr_b", "lr_actor", "gamma", "amp", "fused_adam")},
        "metamotivo_draws": main["theirs"]["draws"],
        "fp32_default_path": main["comparison"],
    }  # fmt: skip
    variants: dict[str, dict[str, Any]] = {}
    variants["aten_tanh"] = summary(one_update(ref, base, data, seed, aten_tanh)["comparison"])
    variants["foreach_adam"] = summary(
        one_update(ref, base.replace(fused_adam=False), data, seed)["comparison"]
    )
    bf16 = one_update(ref, base.replace(amp="bf16"), data, seed)["comparison"]
    variants["bf16_autocast"] = {**summary(bf16), "pass_at_fp32_tolerance": bf16["pass"],
                                 "losses": {k: {"ours": v["ours"], "metamotivo": v["metamotivo"], "rel_diff": v["rel_diff"]}
                                            for k, v in bf16["losses"].items()}}  # fmt: skip
    result["deliberate_differences_one_update"] = variants
    result["precision"] = precision_check(ref, base, data, seed)
    if steps > 1:
        result["fp32_steps"] = many_updates(ref, base, data, seed, steps)
        result["fp64_steps"] = many_updates(ref, base, data, seed, steps, torch.float64)
        result["bf16_steps"] = many_updates(ref, base.replace(amp="bf16"), data, seed, steps)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    return result


def write_fixture(
    path: Path, ref: Reference, data: dict[str, np.ndarray], seed: int
) -> dict[str, Any]:
    """Tiny-config inputs and metamotivo's outputs for ``tests/models/test_fb_reference.py``."""
    config = FBConfig.preset("walker", "tiny", amp="off")
    run = one_update(ref, config, data, seed)
    tensors: dict[str, torch.Tensor] = {}
    tensors.update({f"init/{k}": v for k, v in run["before"].items()})
    tensors.update({f"batch/{k}": getattr(run["batch"], k) for k in TransitionBatch._fields})
    tensors.update({f"noise/{k}": getattr(run["noise"], k) for k in UpdateNoise._fields})
    tensors.update({f"ref_grad/{k}": v for k, v in run["theirs"]["grads"].items()})
    tensors.update({f"ref_post/{k}": v for k, v in run["theirs"]["params"].items()})
    fp64 = side(ref, "metamotivo", config, run["before"], run["batch"], run["noise"], torch.float64)
    tensors.update({f"ref64_grad/{k}": v for k, v in fp64["grads"].items()})
    tensors.update({f"ref64_post/{k}": v for k, v in fp64["params"].items()})
    tensors = {k: v.detach().contiguous().clone() for k, v in tensors.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(
        tensors,
        str(path.with_suffix(".safetensors")),
        metadata={"format": "bfm_gym.fb_reference_update"},
    )
    meta = {
        "what": "one FB update of metamotivo's FBAgent on these inputs, in fp32 (ref_*) and in fp64 "
        "(ref64_*: the same fp32 inputs, arithmetic in float64); see docs/fb_reference_check.md",
        "command": command(),
        "metamotivo_commit": ref.commit,
        "config": config.to_dict(),
        "obs_dim": OBS_DIM,
        "action_dim": ACTION_DIM,
        "reference_losses": {
            k: run["theirs"]["losses"][k] for k in (*_LOSS_KEYS, "total_fb_plus_ortho")
        },
        "reference_losses_fp64": {
            k: fp64["losses"][k] for k in (*_LOSS_KEYS, "total_fb_plus_ortho")
        },
        "tolerances": {"loss_rtol": LOSS_RTOL, "param_atol": PARAM_ATOL, "grad_rtol": GRAD_RTOL},
        "bfm_gym_at_generation": summary(run["comparison"]),
    }
    from bfm_gym.utils.io import write_json_atomic

    write_json_atomic(path.with_suffix(".json"), meta)
    print(f"wrote {path.with_suffix('.safetensors')} and {path.with_suffix('.json')}")
    return meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--metamotivo",
        required=True,
        help="checkout (or bare git dir) of facebookresearch/metamotivo",
    )
    parser.add_argument(
        "--sizes", nargs="+", default=["tiny", "cpu"], choices=["tiny", "cpu", "paper"]
    )
    parser.add_argument(
        "--steps", type=int, default=10, help="consecutive updates compared per size"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--fixture",
        type=Path,
        default=None,
        help="write the tiny-config fixture to PATH.{safetensors,json}",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks/results/fb_reference_check.json")
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    ref = load_metamotivo(args.metamotivo)
    sizes = {s: FBConfig.preset("walker", s) for s in args.sizes}
    data = walker_transitions(max(2048, 2 * max(c.batch_size for c in sizes.values())), args.seed)
    report: dict[str, Any] = {
        "command": command(),
        "machine": machine(
            threads=torch.get_num_threads(),
            torch=torch.__version__,
            native_bf16=cpu_has_native_bf16(),
        ),
        "metamotivo": {
            "commit": ref.commit,
            "modules": [
                "metamotivo/fb/agent.py",
                "metamotivo/fb/model.py",
                "metamotivo/nn_models.py",
            ],
        },
        "data": f"{len(data['obs'])} dm_control walker transitions, uniform random actions, seed {args.seed}; "
        "every 16th marked terminated",
        "tolerances": {
            "fp32": dict(zip(("loss_rtol", "param_atol", "grad_rtol"), FP32_TOL, strict=True)),
            "fp64": dict(zip(("loss_rtol", "param_atol", "grad_rtol"), FP64_TOL, strict=True)),
            "fp32_rounding_floor_factor": FLOOR_FACTOR,
        },
        "sizes": {},
    }
    for size in args.sizes:
        print(f"--- {size}")
        report["sizes"][size] = check_size(ref, size, data, args.seed, args.steps)
        r = report["sizes"][size]
        print("fp32", summary(r["fp32_default_path"]), "fixed tolerance:", r["fp32_default_path"]["pass"],
              "| within rounding floor:", r["precision"]["fp32_within_rounding_floor"],
              "| fp64 identical:", r["precision"]["fp64_pass"])  # fmt: skip
    tiny = FBConfig.preset("walker", "tiny", amp="off")
    report["init_distribution"] = init_distribution(
        ref, FBConfig.preset("walker", args.sizes[-1], amp="off"), args.seed
    )
    report["target_mean_then_matmul_max_abs_diff"] = target_aggregation_effect(
        FBConfig.preset("walker", args.sizes[-1], amp="off"), data, args.seed)  # fmt: skip
    report["polyak_lerp_vs_mul_add_max_abs_diff"] = polyak_effect(tiny, args.seed)
    sizes = report["sizes"].values()
    report["verdict"] = {
        "fp64_identical_all_sizes": all(r["precision"]["fp64_pass"] for r in sizes),
        "fp32_within_rounding_floor_all_sizes": all(
            r["precision"]["fp32_within_rounding_floor"] for r in sizes
        ),
        "fp32_fixed_tolerance": {
            k: r["fp32_default_path"]["pass"] for k, r in report["sizes"].items()
        },
    }
    if args.fixture is not None:
        report["fixture"] = write_fixture(args.fixture, ref, data, args.seed)
    write_report(args.out, report)


if __name__ == "__main__":
    main()
