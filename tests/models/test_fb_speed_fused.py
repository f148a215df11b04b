"""The fused LayerNorm + tanh of the FB networks' embeddings (``networks._LayerNormTanh``) against
the unfused modules: exact gradients (gradcheck in float64), the same outputs in fp32, and under
bf16 autocast at least as close to the fp32 result as the unfused ops are."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F_
from torch import nn

from bfm_gym.models.fb import FBConfig, FBModel
from bfm_gym.models.fb.networks import _LayerNormTanh, _NormTanhSequential


def _reference(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    return torch.tanh(torch.addcmul(bias, F_.layer_norm(x, (x.shape[-1],)), weight))


@pytest.mark.parametrize("shape", [((5, 7), (7,)), ((2, 5, 7), (2, 1, 7))])
def test_gradients_are_exact_in_float64(shape: tuple) -> None:
    x_shape, w_shape = shape
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*x_shape, generator=g, dtype=torch.float64, requires_grad=True)
    w = (1 + 0.3 * torch.randn(*w_shape, generator=g, dtype=torch.float64)).requires_grad_(True)
    b = (0.3 * torch.randn(*w_shape, generator=g, dtype=torch.float64)).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda *a: _LayerNormTanh.apply(*a, 1e-5), (x, w, b))
    torch.testing.assert_close(_LayerNormTanh.apply(x, w, b, 1e-5), _reference(x, w, b))


def _check_fp32_against_plain_autograd(heads: int, rows: int, dim: int, seed: int) -> None:
    """Output and gradients of the fused ensemble LayerNorm-tanh against :func:`_reference` on
    random fp32 inputs ``(heads, rows, dim)`` and per-head affine ``(heads, 1, dim)``."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(heads, rows, dim, generator=g, requires_grad=True)
    w = (1 + 0.3 * torch.randn(heads, 1, dim, generator=g)).requires_grad_(True)
    b = (0.3 * torch.randn(heads, 1, dim, generator=g)).requires_grad_(True)
    up = torch.randn(heads, rows, dim, generator=g)
    fused = _LayerNormTanh.apply(x, w, b, 1e-5)
    grads = torch.autograd.grad(fused, (x, w, b), up)
    ref = _reference(x, w, b)
    ref_grads = torch.autograd.grad(ref, (x, w, b), up)
    torch.testing.assert_close(fused, ref, rtol=0, atol=1e-6)
    for a, r in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(a, r, rtol=1e-5, atol=1e-5)


def test_fp32_outputs_and_gradients_match_the_modules() -> None:
    _check_fp32_against_plain_autograd(heads=2, rows=64, dim=32, seed=1)


def test_bf16_autocast_is_no_less_accurate_than_the_unfused_ops() -> None:
    model = FBModel(FBConfig.preset("walker", "tiny"), obs_dim=24, action_dim=6)
    seq = model.forward_map.embed_sa
    assert isinstance(seq, _NormTanhSequential)
    x = torch.randn(64, 30, generator=torch.Generator().manual_seed(2)).expand(2, -1, -1)
    with torch.no_grad():
        exact = nn.Sequential.forward(seq.double(), x.double()).float()
        seq.float()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fused = seq(x).float()
            unfused = nn.Sequential.forward(seq, x).float()
    err_fused = float((fused - exact).abs().max())
    err_unfused = float((unfused - exact).abs().max())
    assert err_fused <= 1.5 * err_unfused + 1e-3, (err_fused, err_unfused)


def test_the_sequential_keeps_nn_sequential_keys_and_children() -> None:
    model = FBModel(FBConfig.preset("walker", "tiny"), obs_dim=24, action_dim=6)
    keys = set(model.state_dict())
    assert "backward_map.net.1.weight" in keys and "forward_map.embed_sa.1.weight" in keys
    assert "actor.embed_s.1.bias" in keys
    obs, z = torch.randn(5, 24), model.sample_z(5)
    with torch.no_grad():
        fused = model.actor(obs, z)
        plain = torch.tanh(
            model.actor.mlp(
                torch.cat(
                    [
                        nn.Sequential.forward(model.actor.embed_s, obs),
                        nn.Sequential.forward(model.actor.embed_sz, torch.cat([obs, z], -1)),
                    ],
                    -1,
                )
            )
        )
    torch.testing.assert_close(fused, plain, rtol=0, atol=1e-6)


@pytest.mark.parametrize("shape", [((64, 32), (32,)), ((2, 64, 32), (2, 1, 32))])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_plain_ops_form_matches_the_fused_function(shape: tuple, dtype: torch.dtype) -> None:
    """``torch.compile`` and CUDA run ``_layer_norm_tanh_ops``: same dtypes at every step, so
    the same values as the fused function (bit for bit in eager mode on CPU)."""
    from bfm_gym.models.fb.networks import _layer_norm_tanh_ops

    x_shape, w_shape = shape
    g = torch.Generator().manual_seed(5)
    x = torch.randn(*x_shape, generator=g).to(dtype)
    w = 1 + 0.3 * torch.randn(*w_shape, generator=g)
    b = 0.3 * torch.randn(*w_shape, generator=g)
    fused = _LayerNormTanh.apply(x, w, b, 1e-5)
    plain = _layer_norm_tanh_ops(x, w, b, 1e-5)
    assert fused.dtype == plain.dtype == dtype
    torch.testing.assert_close(fused, plain, rtol=0, atol=0)


@pytest.mark.parametrize("heads", [1, 2, 3])
def test_ensembles_of_any_size_match_plain_autograd(heads: int) -> None:
    """One head is an ensemble too: weight ``(1, 1, dim)``, not a single LayerNorm's ``(dim,)``
    (a backward that told the two apart by the number of saved tensors mixed them up)."""
    _check_fp32_against_plain_autograd(heads=heads, rows=16, dim=8, seed=7)
