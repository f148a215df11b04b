"""One update of bfm_gym's FB trainer reproduces metamotivo's on the same input.

The fixture ``data/fb_reference_update.{safetensors,json}`` holds, for a tiny walker config
(z_dim 8, width 32, batch 64): the initial weights (online and targets), a batch of real
dm_control walker transitions, every random draw of the update (training z, goal mask and
permutation, target-action and policy noise), and what one update of metamotivo's ``FBAgent``
(facebookresearch/metamotivo at ff8dcc5) made of them: its losses, the gradient each optimiser
stepped with, and every parameter after the update, in fp32 and in fp64. It was written by
``benchmarks/fb_reference_check.py`` (the command is in the JSON; docs/fb_reference_check.md).

The same update of bfm_gym (fp32, ``amp="off"``) must match within float tolerance; in fp64 the
two agree to ~1e-15, so the fp64 test catches any change to the objective, however small.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

import bfm_gym.models.fb.trainer as trainer_module
from bfm_gym.models.fb import FBConfig, FBTrainer
from bfm_gym.models.fb.agent import UpdateNoise, draw_noise
from bfm_gym.models.fb.replay import TransitionBatch

FIXTURE = Path(__file__).parent / "data" / "fb_reference_update"
LOSSES = ("fb_loss", "fb_diag", "fb_offdiag", "ortho_loss", "ortho_diag", "ortho_offdiag",
          "actor_loss", "q", "target_m")  # fmt: skip
FP64_TOL = {"loss_rtol": 1e-12, "param_atol": 1e-12, "grad_rtol": 1e-10}


@pytest.fixture(scope="module")
def fixture() -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    return load_file(str(FIXTURE.with_suffix(".safetensors"))), json.loads(
        FIXTURE.with_suffix(".json").read_text()
    )


def _section(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) + 1 :]: v for k, v in tensors.items() if k.startswith(prefix + "/")}


@contextlib.contextmanager
def _float64() -> Iterator[None]:
    """Build and run in float64; ``Tensor.float()`` (the agent's upcast of bf16 outputs) keeps
    float64 tensors as they are."""
    old, original = torch.get_default_dtype(), torch.Tensor.float
    torch.set_default_dtype(torch.float64)
    torch.Tensor.float = lambda self, *a, **k: (
        self if self.dtype == torch.float64 else original(self, *a, **k)
    )  # type: ignore[method-assign]
    try:
        yield
    finally:
        torch.set_default_dtype(old)
        torch.Tensor.float = original  # type: ignore[method-assign]


def our_update(
    tensors: dict[str, torch.Tensor], meta: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
    dtype: torch.dtype = torch.float32, **changes: Any,
) -> tuple[dict[str, float], dict[str, torch.Tensor], dict[str, torch.Tensor]]:  # fmt: skip
    """One ``FBTrainer.update`` from the fixture's weights, batch and draws.

    Returns:
        (metrics, gradients the optimisers stepped with, parameters after), bfm_gym names.
    """
    config = FBConfig.from_dict({**meta["config"], "amp": "off", **changes})
    cast = lambda t: t.to(dtype) if t.is_floating_point() else t  # noqa: E731
    batch = TransitionBatch(**{k: cast(v) for k, v in _section(tensors, "batch").items()})
    noise = UpdateNoise(**{k: cast(v) for k, v in _section(tensors, "noise").items()})
    init = _section(tensors, "init")
    with _float64() if dtype == torch.float64 else contextlib.nullcontext():
        trainer = FBTrainer(config, meta["obs_dim"], meta["action_dim"], device="cpu", threads=None)
        online = {k: v for k, v in init.items() if not k.startswith("target_")}
        trainer.model.load_state_dict({**trainer.model.state_dict(), **online})
        trainer.agent.load_target_state_dict(
            {k: v for k, v in init.items() if k.startswith("target_")}
        )
        names = {id(p): k for k, p in trainer.model.named_parameters()}
        grads: dict[str, torch.Tensor] = {}
        for opt in (trainer.agent.fb_optimizer, trainer.agent.actor_optimizer):
            step = opt.step

            def recording_step(*a: Any, _opt: Any = opt, _step: Any = step, **k: Any) -> Any:
                for group in _opt.param_groups:
                    for p in group["params"]:
                        grads[names[id(p)]] = p.grad.detach().clone()
                return _step(*a, **k)

            monkeypatch.setattr(opt, "step", recording_step)
        monkeypatch.setattr(trainer_module, "draw_noise", lambda *a, **k: noise)
        metrics = trainer.update(batch)
    params = {k: v for k, v in trainer.model.state_dict().items() if not k.startswith("cov")}
    params.update(trainer.agent.target_state_dict())
    return {k: float(v) for k, v in metrics.items()}, grads, params


def mismatches(
    ours: tuple[dict[str, float], dict[str, torch.Tensor], dict[str, torch.Tensor]],
    ref_losses: dict[str, float], ref_grads: dict[str, torch.Tensor],
    ref_params: dict[str, torch.Tensor], tol: dict[str, float],
) -> list[str]:  # fmt: skip
    """Every quantity outside tolerance, as readable lines (empty: the updates agree)."""
    metrics, grads, params = ours
    out = []
    for k in LOSSES:
        diff = abs(metrics[k] - ref_losses[k])
        if diff > tol["loss_rtol"] * max(1.0, abs(ref_losses[k])):
            out.append(f"loss {k}: ours {metrics[k]!r}, metamotivo {ref_losses[k]!r}")
    if set(grads) != set(ref_grads) or set(params) != set(ref_params):
        out.append(
            f"parameter sets differ: {sorted(set(grads) ^ set(ref_grads))} {sorted(set(params) ^ set(ref_params))}"
        )
        return out
    for k, g in ref_grads.items():
        diff = float((grads[k].double() - g.double()).abs().max())
        if diff > tol["grad_rtol"] * float(g.abs().max()):
            out.append(f"grad {k}: max abs diff {diff:.3g} (max |g| {float(g.abs().max()):.3g})")
    for k, p in ref_params.items():
        diff = float((params[k].double() - p.double()).abs().max())
        if diff > tol["param_atol"]:
            out.append(f"param after update {k}: max abs diff {diff:.3g}")
    return out


def test_fixture_draws_have_the_layout_of_draw_noise(
    fixture: tuple[dict[str, torch.Tensor], dict[str, Any]],
) -> None:
    tensors, meta = fixture
    config = FBConfig.from_dict({**meta["config"], "amp": "off"})
    fresh = draw_noise(
        config, meta["action_dim"], torch.Generator().manual_seed(0), torch.device("cpu")
    )
    stored = _section(tensors, "noise")
    assert set(stored) == set(UpdateNoise._fields)
    for name in UpdateNoise._fields:
        assert (stored[name].shape, stored[name].dtype) == (
            getattr(fresh, name).shape,
            getattr(fresh, name).dtype,
        ), name


def test_one_update_matches_metamotivo_fp32(
    fixture: tuple[dict[str, torch.Tensor], dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    tensors, meta = fixture
    ours = our_update(tensors, meta, monkeypatch)
    bad = mismatches(ours, meta["reference_losses"], _section(tensors, "ref_grad"),
                     _section(tensors, "ref_post"), meta["tolerances"])  # fmt: skip
    assert not bad, "\n".join(bad)


def test_one_update_matches_metamotivo_fp64(
    fixture: tuple[dict[str, torch.Tensor], dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    tensors, meta = fixture
    ours = our_update(tensors, meta, monkeypatch, torch.float64)
    bad = mismatches(ours, meta["reference_losses_fp64"], _section(tensors, "ref64_grad"),
                     _section(tensors, "ref64_post"), FP64_TOL)  # fmt: skip
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize(
    "change",
    [
        {"gamma": 0.97},
        {"ortho_coef": 0.99},
        {"actor_pessimism": 0.4},
        {"tau": 0.011},
        {"stddev_clip": 0.29},
    ],
)
def test_a_changed_objective_is_caught(
    fixture: tuple[dict[str, torch.Tensor], dict[str, Any]], monkeypatch: pytest.MonkeyPatch,
    change: dict[str, float],
) -> None:  # fmt: skip
    """The check is not vacuous: a small change to the loss or the update shows up in fp64."""
    tensors, meta = fixture
    ours = our_update(tensors, meta, monkeypatch, torch.float64, **change)
    assert mismatches(ours, meta["reference_losses_fp64"], _section(tensors, "ref64_grad"),
                      _section(tensors, "ref64_post"), FP64_TOL)  # fmt: skip


def test_a_tiny_change_to_the_fb_loss_fails_the_fp32_comparison(
    fixture: tuple[dict[str, torch.Tensor], dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Off-diagonal term x 1.001: already outside the fp32 tolerances."""
    import bfm_gym.models.fb.agent as agent_module

    original = agent_module.fb_loss

    def scaled(m: torch.Tensor, target_m: torch.Tensor, discount: torch.Tensor) -> Any:
        _, diag, offdiag = original(m, target_m, discount)
        return diag + 1.001 * offdiag, diag, 1.001 * offdiag

    monkeypatch.setattr(agent_module, "fb_loss", scaled)
    tensors, meta = fixture
    ours = our_update(tensors, meta, monkeypatch)
    assert mismatches(ours, meta["reference_losses"], _section(tensors, "ref_grad"),
                      _section(tensors, "ref_post"), meta["tolerances"])  # fmt: skip
