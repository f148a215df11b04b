"""``PolicyRunner``: the fast path of the FB-style actor (FB and HILP share it): the policy mean ``pi(s, z)`` on a fixed batch, without per-step overhead.

The latent-action wrapper calls the actor once per low-level env step. On CPU a walker step
costs ~200 us, while calling :class:`~bfm_gym.models.fb.networks.Actor` through ``nn.Module``
costs ~240 us on the 2-core dev machine for the "cpu" preset (hidden 256): it is ~20 small
ops, each paying Python dispatch, and the custom tanh's autograd ``Function`` alone costs
~30 us. The runner evaluates the *same* function with ~10 ops on preallocated buffers:

* the two first layers (``embed_s`` on s, ``embed_sz`` on [s, z]) are one ``addmm`` on the
  input buffer ``[s, z]`` (the ``embed_s`` block has zero rows for z);
* their LayerNorms are one ``layer_norm`` on a ``(batch, 2, h)`` view plus the per-branch
  affine, and one ``tanh`` on both branches;
* the remaining embedding layers of both branches are one ``baddbmm`` each (one matrix per
  branch), whose output laid out as ``(batch, [s, sz])`` is exactly ``cat([s, sz])``;
* then the actor MLP and the final tanh.

Observations and latents are written straight into the input buffer (a numpy view of the
torch tensor), and the action comes back as a numpy view of the output, so no tensor is
created or transferred per step.

For a single row (the single-env wrapper) and a small actor (the "cpu" and "tiny" presets)
the same fused forward runs in numpy instead (:class:`_NumpyFused`): a torch op costs ~5-9 us
of dispatch on this class of machine, a numpy op ~1-2 us, and interleaved with MuJoCo steps
(cold caches) the numpy forward measured ~63 us against ~122 us for the fused torch one and
~290 us for ``model.actor``. The LayerNorm centring is folded into the first layer's weights
(``h - mean(h)`` is linear in h), so only the variance is computed per call. Larger actors and
batches use torch: numpy's OpenBLAS may run big matrix products on several threads, which is
slower on a busy machine, while torch follows ``torch.set_num_threads``. At construction the runner checks its output against
``model.actor`` on random inputs and falls back to ``model.actor`` (with a warning) if they
differ, e.g. after an architecture change it does not know. Off CPU it always uses
``model.actor`` (one host-to-device copy in and one back per call).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch
import torch.nn.functional as F_
from torch import nn

from bfm_gym.models.fb.networks import Tanh

if TYPE_CHECKING:
    from bfm_gym.models.fb.model import FBModel

__all__ = ["PolicyRunner"]

_CHECK_ATOL = 1e-5
_NUMPY_MAX_WEIGHTS = 1 << 19
"""Largest actor (in weights) run by the numpy path; the "cpu" preset has ~2.4e5."""


class PolicyRunner:
    """``pi``'s mean for ``batch`` rows, reading ``obs`` and ``z`` from preallocated buffers.

    Args:
        model: The frozen FB model, or any model whose ``actor`` is an
            :class:`~bfm_gym.models.fb.networks.Actor` with ``obs_dim``, ``z_dim``, ``device``
            and ``project`` (the HILP family's is).
        batch: Number of rows (envs) evaluated per call.
        backend: ``"auto"`` (numpy for small actors on CPU, else fused torch on CPU, else
            ``model.actor``), or force ``"numpy"``, ``"torch-fused"`` or ``"module"`` (for
            comparisons; a fused backend the actor's layout does not allow falls back to
            ``"module"``).

    Attributes:
        obs: ``(batch, obs_dim)`` float32 numpy view to write observations into.
        z: ``(batch, z_dim)`` float32 numpy view to write (projected) latents into.
        path: ``"numpy"``, ``"torch-fused"`` or ``"module"`` (``model.actor``).
    """

    def __init__(
        self,
        model: FBModel | Any,
        batch: int = 1,
        *,
        backend: Literal["auto", "numpy", "torch-fused", "module"] = "auto",
    ) -> None:
        if backend not in ("auto", "numpy", "torch-fused", "module"):
            raise ValueError(f"unknown PolicyRunner backend {backend!r}")
        self._model = model
        self.batch = int(batch)
        od, zd = model.obs_dim, model.z_dim
        self._on_cpu = model.device.type == "cpu"
        # host buffer [s, z, 1]: the trailing 1 multiplies the bias row of the numpy path
        self._x_aug = torch.ones(self.batch, od + zd + 1)
        if not self._on_cpu and torch.cuda.is_available():
            self._x_aug = self._x_aug.pin_memory()
        self._x = self._x_aug[:, : od + zd]
        x_np = self._x_aug.numpy()
        self.obs = x_np[:, :od]
        self.z = x_np[:, od : od + zd]
        self._weights: _FusedWeights | None = None
        self._numpy: _NumpyFused | None = None
        if backend != "module" and self._on_cpu:
            self._weights = _FusedWeights.build(model.actor, od, zd)
            small = sum(p.numel() for p in model.actor.parameters()) <= _NUMPY_MAX_WEIGHTS
            if self._weights is not None and (backend == "numpy" or (backend == "auto" and small)):
                self._numpy = _NumpyFused(self._weights, x_np)
            if self._weights is not None and not self._agrees_with_actor():
                warnings.warn(
                    "PolicyRunner: the fused actor disagrees with model.actor; using "
                    "model.actor (slower). Please report this.",
                    RuntimeWarning,
                    stacklevel=2,
                )
                self._weights = self._numpy = None
        self.path = (
            "numpy" if self._numpy is not None
            else "torch-fused" if self._weights is not None
            else "module"
        )  # fmt: skip

    def __call__(self) -> np.ndarray:
        """``(batch, action_dim)`` float32 policy means for the rows of :attr:`obs` / :attr:`z`.

        The result is a view of an internal buffer, overwritten by the next call.
        """
        if self._numpy is not None:
            return self._numpy.run()
        with torch.inference_mode():
            if self._weights is not None:
                return self._weights.run(self._x).numpy()
            od = self._model.obs_dim
            x = self._x.to(self._model.device, non_blocking=True)
            return self._model.actor(x[:, :od], x[:, od:]).cpu().numpy()

    def _agrees_with_actor(self) -> bool:
        gen = torch.Generator().manual_seed(0)
        od = self._model.obs_dim
        ok = True
        for _ in range(3):
            x = torch.randn(self.batch, self._x.shape[1], generator=gen)
            x[:, od:] = self._model.project(x[:, od:])
            with torch.inference_mode():
                ref = self._model.actor(x[:, :od], x[:, od:]).numpy()
            self._x.copy_(x)
            out = self()
            ok = ok and bool(np.allclose(out, ref, atol=_CHECK_ATOL, rtol=0))
        self._x.zero_()
        return ok


class _FusedWeights:
    """The actor's parameters rearranged for the fused forward (see the module docstring)."""

    def __init__(
        self,
        w_in: torch.Tensor,
        b_in: torch.Tensor,
        ln_w: torch.Tensor,
        ln_b: torch.Tensor,
        ln_eps: float,
        embed: list[tuple[torch.Tensor, torch.Tensor]],
        mlp: list[tuple[torch.Tensor, torch.Tensor]],
    ) -> None:
        self.w_in, self.b_in = w_in, b_in  # (od + zd, 2h), (2h,)
        self.ln_w, self.ln_b, self.ln_eps = ln_w, ln_b, ln_eps  # (2, h) each
        self.embed = embed  # per layer: weight (2, in, out), bias (2, 1, out)
        self.mlp = mlp  # per layer: weight (in, out), bias (out,)
        self.h = ln_w.shape[1]

    @classmethod
    def build(cls, actor: nn.Module, obs_dim: int, z_dim: int) -> _FusedWeights | None:
        """Rearranged weights, or None when the actor is not the known layout."""
        try:
            s_layers = _embedding_layers(actor.embed_s)
            sz_layers = _embedding_layers(actor.embed_sz)
            mlp = _mlp_layers(actor.mlp)
        except (AttributeError, _UnknownLayout):
            return None
        (s0, s_norm), (sz0, sz_norm) = s_layers[0], sz_layers[0]
        h = s0.out_features
        if (
            s0.in_features != obs_dim
            or sz0.in_features != obs_dim + z_dim
            or sz0.out_features != h
            or len(s_layers) != len(sz_layers)
            or s_norm.eps != sz_norm.eps
            or any(
                a.weight.shape != b.weight.shape
                for (a, _), (b, _) in zip(s_layers[1:], sz_layers[1:], strict=True)
            )
        ):
            return None
        with torch.no_grad():
            w_in = torch.zeros(obs_dim + z_dim, 2 * h)
            w_in[:obs_dim, :h] = s0.weight.T
            w_in[:, h:] = sz0.weight.T
            b_in = torch.cat([s0.bias, sz0.bias])
            ln_w = torch.stack([s_norm.weight, sz_norm.weight])
            ln_b = torch.stack([s_norm.bias, sz_norm.bias])
            embed = [
                (
                    torch.stack([a.weight.T, b.weight.T]).contiguous(),
                    torch.stack([a.bias, b.bias]).unsqueeze(1).contiguous(),
                )
                for (a, _), (b, _) in zip(s_layers[1:], sz_layers[1:], strict=True)
            ]
            mlp_w = [(lin.weight.T.contiguous(), lin.bias.clone()) for lin in mlp]
        return cls(
            w_in.contiguous(), b_in.contiguous(), ln_w, ln_b, float(s_norm.eps), embed, mlp_w
        )

    def run(self, x: torch.Tensor) -> torch.Tensor:
        """``tanh(mlp(cat(embed_s(s), embed_sz([s, z]))))`` for ``x = [s, z]`` rows."""
        n, h = x.shape[0], self.h
        y = torch.addmm(self.b_in, x, self.w_in).view(n, 2, h)
        y = F_.layer_norm(y, (h,), eps=self.ln_eps).mul_(self.ln_w).add_(self.ln_b).tanh_()
        y = y.transpose(0, 1)  # (2, n, h): branch-major for the batched matmuls
        for w, b in self.embed:
            y = torch.baddbmm(b, y, w).relu_()
        y = y.transpose(0, 1).reshape(n, -1)  # (n, [s, sz]) == cat([s, sz], -1)
        last = len(self.mlp) - 1
        for i, (w, b) in enumerate(self.mlp):
            y = torch.addmm(b, y, w)
            y = y.tanh_() if i == last else y.relu_()
        return y


class _NumpyFused:
    """:class:`_FusedWeights`' forward in numpy, on preallocated buffers.

    Every layer's input buffer ends with a constant 1 and its weight matrix with the bias row,
    so ``x @ W`` includes the bias (one op per layer instead of two), and each op writes into
    the next layer's input buffer. Rows are kept as ``(batch, 1, features)`` stacks, so numpy's
    ``matmul`` runs the same vector-matrix product for every row whatever the batch size: a
    row's action is bitwise the same alone or in a batch (the vector env relies on this to
    reproduce single-env trajectories exactly), and each product stays a small single-threaded
    BLAS call.
    """

    def __init__(self, w: _FusedWeights, x: np.ndarray) -> None:
        h = w.h
        n = x.shape[0]
        center = np.eye(h, dtype=np.float64) - 1.0 / h  # h - mean(h) == h @ center
        w_in = np.concatenate([w.w_in.double().numpy(), w.b_in.double().numpy()[None]])
        for half in (slice(0, h), slice(h, 2 * h)):
            w_in[:, half] = w_in[:, half] @ center
        self.x = x[:, None, :]  # (n, 1, od + zd + 1) view of the shared input, ending in 1
        self.w_in = np.ascontiguousarray(w_in, dtype=np.float32)
        self.inv_h, self.eps = np.float32(1.0 / h), np.float32(w.ln_eps)
        self.y = np.empty((n, 1, 2 * h), np.float32)
        self.yv = self.y.reshape(n, 2, h)
        self.var = np.empty((n, 2), np.float32)
        self.ln_w = w.ln_w.numpy().copy()
        self.ln_b = w.ln_b.numpy().copy()
        # embedding layers after the first: (n, 2, 1, in + 1) inputs, (2, in + 1, out) weights
        self.embed: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        for wt, b in w.embed:
            buf = np.ones((n, 2, 1, wt.shape[1] + 1), np.float32)
            weight = np.concatenate([wt.numpy(), b.numpy()], axis=1)
            self.embed.append((buf, weight, buf[..., :-1]))
        self.mlp: list[tuple[np.ndarray, np.ndarray]] = []
        for wt, b in w.mlp:
            buf = np.ones((n, 1, wt.shape[0] + 1), np.float32)
            self.mlp.append((buf, np.concatenate([wt.numpy(), b.numpy()[None]])))
        # the last embedding layer writes the first mlp input: (n, 2, 1, h/2) == cat([s, sz])
        first = self.mlp[0][0]
        self.embed_out = first[:, 0, :-1].reshape(n, 2, 1, -1)
        if not np.shares_memory(self.embed_out, first):  # pragma: no cover - numpy keeps views
            raise RuntimeError("embedding output is not a view of the mlp input")
        self.out = np.empty((n, 1, self.mlp[-1][1].shape[1]), np.float32)
        self.out2d = self.out[:, 0, :]

    def run(self) -> np.ndarray:
        yv, var = self.yv, self.var
        np.matmul(self.x, self.w_in, out=self.y)  # centred per branch, bias included
        np.einsum("nij,nij->ni", yv, yv, out=var)
        var *= self.inv_h
        var += self.eps
        np.sqrt(var, out=var)
        np.divide(1.0, var, out=var)
        yv *= var[:, :, None]
        yv *= self.ln_w
        yv += self.ln_b
        embed = self.embed
        np.tanh(yv, out=embed[0][2][:, :, 0, :])
        last = len(embed) - 1
        for i, (buf, w, _) in enumerate(embed):
            dst = self.embed_out if i == last else embed[i + 1][2]
            np.matmul(buf, w, out=dst)
            np.maximum(dst, 0.0, out=dst)
        mlp = self.mlp
        last = len(mlp) - 1
        for i, (buf, w) in enumerate(mlp):
            if i == last:
                np.matmul(buf, w, out=self.out)
                np.tanh(self.out, out=self.out)
                return self.out2d
            dst = mlp[i + 1][0][:, :, :-1]
            np.matmul(buf, w, out=dst)
            np.maximum(dst, 0.0, out=dst)
        raise AssertionError  # pragma: no cover - mlp always has a last layer


class _UnknownLayout(Exception):
    pass


def _embedding_layers(seq: nn.Module) -> list[tuple[nn.Linear, nn.Module]]:
    """``[(Linear, LayerNorm), (Linear, ReLU), ...]`` of ``Linear -> LayerNorm -> tanh ->
    [Linear -> ReLU] x k``; raises :class:`_UnknownLayout` for anything else."""
    mods = list(seq.children()) if isinstance(seq, nn.Sequential) else []
    if (
        len(mods) < 5
        or not isinstance(mods[0], nn.Linear)
        or not isinstance(mods[1], nn.LayerNorm)
        or not mods[1].elementwise_affine
        or mods[1].bias is None
        or not isinstance(mods[2], (Tanh, nn.Tanh))
        or (len(mods) - 3) % 2
    ):
        raise _UnknownLayout
    layers: list[tuple[nn.Linear, nn.Module]] = [(mods[0], mods[1])]
    for lin, act in zip(mods[3::2], mods[4::2], strict=True):
        if not isinstance(lin, nn.Linear) or not isinstance(act, nn.ReLU):
            raise _UnknownLayout
        layers.append((lin, act))
    return layers


def _mlp_layers(seq: nn.Module) -> list[nn.Linear]:
    """Linears of ``[Linear -> ReLU] x k -> Linear`` (the actor applies tanh after it)."""
    mods = list(seq.children()) if isinstance(seq, nn.Sequential) else []
    if not mods or len(mods) % 2 != 1:
        raise _UnknownLayout
    lins = mods[0::2]
    if not all(isinstance(m, nn.Linear) for m in lins) or not all(
        isinstance(m, nn.ReLU) for m in mods[1::2]
    ):
        raise _UnknownLayout
    return lins  # type: ignore[return-value]
