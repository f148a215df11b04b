"""SB3 training state <-> flat dicts of numpy arrays (``np.savez``-able, no pickle).

Saved: the policy's ``state_dict`` (every network and target network), each optimizer's
state (tensors as arrays, ``param_groups`` as a JSON string), SAC's entropy coefficient,
the filled part of the replay buffer, and ``num_timesteps``. Not saved: SB3's protected
counters (``_n_updates``, ``_episode_num``: TD3's policy-delay phase and the log counters
restart), and the rollout buffer of on-policy algorithms (empty between episodes anyway).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import torch

__all__ = ["load_training_state", "training_state"]


def _module_arrays(module: torch.nn.Module, prefix: str) -> dict[str, np.ndarray]:
    return {f"{prefix}/{k}": v.detach().cpu().numpy().copy() for k, v in module.state_dict().items()}


def _load_module(module: torch.nn.Module, state: dict[str, np.ndarray], prefix: str) -> None:
    sd = {k[len(prefix) + 1:]: torch.as_tensor(np.array(v)) for k, v in state.items()
          if k.startswith(prefix + "/")}
    module.load_state_dict(sd)


def _optimizer_arrays(opt: torch.optim.Optimizer, prefix: str) -> dict[str, np.ndarray]:
    sd = opt.state_dict()
    out = {f"{prefix}/param_groups": np.array(json.dumps(sd["param_groups"]))}
    for idx, entries in sd["state"].items():
        for key, value in entries.items():
            arr = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
            out[f"{prefix}/state/{idx}/{key}"] = arr.copy()
    return out


def _load_optimizer(opt: torch.optim.Optimizer, state: dict[str, np.ndarray], prefix: str) -> None:
    if f"{prefix}/param_groups" not in state:
        return
    groups = json.loads(str(state[f"{prefix}/param_groups"]))
    per_param: dict[int, dict[str, torch.Tensor]] = {}
    head = f"{prefix}/state/"
    for key, value in state.items():
        if key.startswith(head):
            idx, name = key[len(head):].split("/", 1)
            per_param.setdefault(int(idx), {})[name] = torch.as_tensor(np.array(value))
    opt.load_state_dict({"state": per_param, "param_groups": groups})


_BUFFER_ARRAYS = ("observations", "next_observations", "actions", "rewards", "dones", "timeouts")


def training_state(model: Any) -> dict[str, np.ndarray]:
    """Everything of ``model`` (an SB3 algorithm) that resuming needs, as numpy arrays."""
    out = _module_arrays(model.policy, "policy")
    for name, opt in _optimizers(model).items():
        out.update(_optimizer_arrays(opt, f"opt/{name}"))
    if isinstance(getattr(model, "log_ent_coef", None), torch.Tensor):
        out["log_ent_coef"] = model.log_ent_coef.detach().cpu().numpy().copy()
    buffer = getattr(model, "replay_buffer", None)
    if buffer is not None:
        n = buffer.buffer_size if buffer.full else buffer.pos
        for name in _BUFFER_ARRAYS:
            arr = getattr(buffer, name, None)
            if arr is not None:
                out[f"buffer/{name}"] = np.array(arr[:n])
        out["buffer/pos"] = np.array(buffer.pos, dtype=np.int64)
        out["buffer/full"] = np.array(buffer.full)
    out["num_timesteps"] = np.array(model.num_timesteps, dtype=np.int64)
    return out


def load_training_state(model: Any, state: dict[str, np.ndarray]) -> None:
    """Inverse of :func:`training_state` on a model built with the same settings."""
    _load_module(model.policy, state, "policy")
    for name, opt in _optimizers(model).items():
        _load_optimizer(opt, state, f"opt/{name}")
    if "log_ent_coef" in state and isinstance(getattr(model, "log_ent_coef", None), torch.Tensor):
        with torch.no_grad():
            model.log_ent_coef.copy_(torch.as_tensor(np.array(state["log_ent_coef"])))
    buffer = getattr(model, "replay_buffer", None)
    if buffer is not None and "buffer/pos" in state:
        for name in _BUFFER_ARRAYS:
            key = f"buffer/{name}"
            arr = getattr(buffer, name, None)
            if arr is not None and key in state:
                arr[: len(state[key])] = state[key]
        buffer.pos = int(state["buffer/pos"])
        buffer.full = bool(state["buffer/full"])
    model.num_timesteps = int(state["num_timesteps"])


def _optimizers(model: Any) -> dict[str, torch.optim.Optimizer]:
    policy = model.policy
    found: dict[str, torch.optim.Optimizer] = {}
    for name in ("actor", "critic"):
        part = getattr(policy, name, None)
        if part is not None and getattr(part, "optimizer", None) is not None:
            found[name] = part.optimizer
    if not found and getattr(policy, "optimizer", None) is not None:
        found["policy"] = policy.optimizer  # on-policy algorithms: one optimizer
    if getattr(model, "ent_coef_optimizer", None) is not None:
        found["ent_coef"] = model.ent_coef_optimizer
    return found
