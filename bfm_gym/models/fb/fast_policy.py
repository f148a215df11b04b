"""``PolicyRunner``: the fast path of the FB-style actor (FB and HILP share it): the policy mean ``pi(s, z)`` on a fixed batch, without per-step overhead.

The latent-action wrapper calls the actor once per low-level env step. On CPU a walker step
costs ~200 us, while calling :class:`~bfm_gym.models.fb.networks.Actor` through ``nn.Module``
costs ~240 us on the 2-core dev machine for the "cpu" preset (hidden 256): it is ~20 small
ops, each paying Python dispatch (that figure predates issue 21, when tanh was a custom
autograd ``Function`` costing ~30 us of it). The runner evaluates the *same* function with
~10 ops on preallocated buffers:

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

For an actor up to 2^21 weights (the "cpu" and "tiny" presets, and the 512-wide shipped
``walker``) the same fused forward runs in numpy instead (:class:`_NumpyFused`): a torch op costs ~5-9 us
of dispatch on this class of machine, a numpy op ~1-2 us, and interleaved with MuJoCo steps
(cold caches) the numpy forward measured ~63 us against ~122 us for the fused torch one and
~290 us for ``model.actor``. The LayerNorm centring is folded into the first layer's weights
(``h - mean(h)`` is linear in h), so only the variance is computed per call. The 512-wide
walker actor (5.8e5 weights) ran its single-row forward in 65 us in numpy against 107 us fused
in torch, and a latent wrapper step in 228 us against 323 us (stop 43, avx512_bf16 VM;
it ran on torch before, when the limit was 2^19 weights). Larger actors use torch: numpy's
OpenBLAS may run big matrix products on several threads, which is slower on a busy machine,
while torch follows ``torch.set_num_threads``. At construction the runner checks its output
against ``model.actor`` on random inputs (to 1e-4: the float32 rounding of a 512-wide actor
reaches ~1.2e-5 on either fused path) and falls back to ``model.actor`` (with a warning) if
they differ, e.g. after an architecture change it does not know. Off CPU it always uses
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
from bfm_gym.utils.blas import call_with_one_blas_thread

if TYPE_CHECKING:
    from bfm_gym.models.fb.model import FBModel

__all__ = ["FBFeatures", "PolicyRunner"]

_CHECK_ATOL = 1e-4
_NUMPY_MAX_WEIGHTS = 1 << 21
"""Largest actor (in weights) run by the numpy path; the "cpu" preset has ~2.4e5, the 512-wide
shipped walker ~5.8e5."""
_BLAS_THREADED_LAYER = 1 << 19
"""Weights of one layer from which OpenBLAS threads even a one-row product. A runner of 2 rows
or more, or with such a layer, runs its forward with one BLAS thread (:mod:`bfm_gym.utils.blas`).
Measured with numpy 2.4's OpenBLAS 0.3.31 on the 2-core AVX2 VM, two threads allowed: every
product of 2 rows and more (2 x 257 x 256 included, stacked or not) was threaded, one row of a
513 x 512 layer was not, one row of 1025 x 1024 was. A threaded product's helper thread keeps
spinning after it returns, on the core that the env step between two forwards needs."""


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
        path: ``"numpy"``, ``"numpy-batched"`` (after :meth:`use_matrix_products`),
            ``"torch-fused"`` or ``"module"`` (``model.actor``).
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
        self._numpy: _NumpyFused | _NumpyBatched | None = None
        self._one_blas_thread = False  # see _BLAS_THREADED_LAYER
        if backend != "module" and self._on_cpu:
            self._weights = _FusedWeights.build(model.actor, od, zd)
            small = sum(p.numel() for p in model.actor.parameters()) <= _NUMPY_MAX_WEIGHTS
            if self._weights is not None and (backend == "numpy" or (backend == "auto" and small)):
                self._numpy = _NumpyFused(self._weights, x_np)
                self._one_blas_thread = self.batch > 1 or self._numpy.largest_layer() >= _BLAS_THREADED_LAYER
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

    @property
    def independent_rows(self) -> bool:
        """Whether each row's action is bitwise the same whatever the batch and a call runs
        numpy only (no torch op): then a runner built for a subset of the rows computes them
        exactly as this one, even in a forked process (the vector env's worker processes do).
        True on the row-wise numpy path."""
        return isinstance(self._numpy, _NumpyFused)

    def use_matrix_products(self) -> bool:
        """Switches the numpy path to one matrix product per layer for all rows
        (:class:`_NumpyBatched`): about twice as fast at 8 rows, but a row's action then agrees
        with a 1-row runner's only up to float32 rounding (the row-wise default is bitwise the
        same whatever the batch). Returns whether the switch happened (False on the torch
        paths, which already use matrix products, and for a batch of 1)."""
        if self._numpy is None or self.batch < 2:
            return False
        if not isinstance(self._numpy, _NumpyBatched):
            self._numpy = _NumpyBatched(self._numpy)
            self.path = "numpy-batched"
        return True

    def __call__(self) -> np.ndarray:
        """``(batch, action_dim)`` float32 policy means for the rows of :attr:`obs` / :attr:`z`.

        The result is a view of an internal buffer, overwritten by the next call.
        """
        if self._numpy is not None:
            if self._one_blas_thread:
                return call_with_one_blas_thread(self._numpy.run)
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
        # h - mean(h) == h @ center; the 1/sqrt(h) scale makes the sum of squares of a row the
        # variance, and sqrt(h) goes into the LayerNorm weight: LN(y) = y_c sqrt(h) /
        # sqrt(sum((y_c / sqrt(h))^2) + eps) with y_c / sqrt(h) the matmul's output
        center = (np.eye(h, dtype=np.float64) - 1.0 / h) / np.sqrt(h)
        w_in = np.concatenate([w.w_in.double().numpy(), w.b_in.double().numpy()[None]])
        for half in (slice(0, h), slice(h, 2 * h)):
            w_in[:, half] = w_in[:, half] @ center
        self.x = x[:, None, :]  # (n, 1, od + zd + 1) view of the shared input, ending in 1
        self.w_in = np.ascontiguousarray(w_in, dtype=np.float32)
        self.eps = np.float32(w.ln_eps)
        self.y = np.empty((n, 1, 2 * h), np.float32)
        self.yv = self.y.reshape(n, 2, h)
        self.var = np.empty((n, 2), np.float32)
        self.var3 = self.var[:, :, None]
        self.scale = np.empty((n, 2, h), np.float32)
        self.ln_w = (w.ln_w.double().numpy() * np.sqrt(h)).astype(np.float32)
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
        # (layer input, weight, output) in order, each layer's output the next one's input
        embed_dst = [e[2] for e in self.embed[1:]] + [self.embed_out]
        mlp_dst = [m[0][:, :, :-1] for m in self.mlp[1:]] + [self.out]
        self.layers = [(b, wt, d) for (b, wt, _), d in zip(self.embed, embed_dst, strict=True)]
        self.layers += [(b, wt, d) for (b, wt), d in zip(self.mlp, mlp_dst, strict=True)]
        self.tanh_in = self.embed[0][2][:, :, 0, :]

    def largest_layer(self) -> int:
        """Weights (bias row included) of this forward's largest layer."""
        return max(w.shape[-2] * w.shape[-1] for w in [self.w_in] + [w for _, w, _ in self.layers])

    def run(self) -> np.ndarray:
        """~14 numpy calls: the input layer, the LayerNorm (sum of squares, rsqrt, one scale
        and one shift), tanh, then one matmul and one ReLU (the last: tanh) per layer."""
        yv, var = self.yv, self.var
        np.matmul(self.x, self.w_in, out=self.y)  # centred and scaled per branch, bias included
        _sum_squares(yv, var)
        var += self.eps
        np.sqrt(var, out=var)
        np.divide(self.ln_w, self.var3, out=self.scale)
        yv *= self.scale
        yv += self.ln_b
        np.tanh(yv, out=self.tanh_in)
        dst = _relu_layers(self.layers)
        np.tanh(dst, out=dst)
        return self.out2d


def _relu_layers(layers: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> np.ndarray:
    """``dst = buf @ w`` for each ``(buf, w, dst)`` in turn, ReLU in place after every layer but
    the last; returns the last ``dst`` (no activation). The buffers chain: each ``dst`` is a
    view of the next layer's ``buf``."""
    for buf, w, dst in layers[:-1]:
        np.matmul(buf, w, out=dst)
        np.maximum(dst, 0.0, out=dst)
    buf, w, dst = layers[-1]
    np.matmul(buf, w, out=dst)
    return dst


if hasattr(np, "vecdot"):  # numpy >= 2: a ufunc, no Python-level wrapper

    def _sum_squares(y: np.ndarray, out: np.ndarray) -> None:
        np.vecdot(y, y, out=out)

else:  # pragma: no cover - numpy 1.x

    def _sum_squares(y: np.ndarray, out: np.ndarray) -> None:
        np.einsum("nij,nij->ni", y, y, out=out)


def _row_sum_squares(y: np.ndarray) -> np.ndarray:
    """``(n,)`` sums of squares of the rows of ``y`` ``(n, k)``."""
    return np.einsum("nk,nk->n", y, y)


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


# ------------------------------------------------------------------------------------------------
# phi and psi for OpTI-BFM: one state's features per update, n candidates' psi per selection
# ------------------------------------------------------------------------------------------------


class FBFeatures:
    """Fast ``phi(s)`` of one state and ``psi(s, z_1..z_n)`` of n latents at one state.

    OpTI-BFM (:mod:`bfm_gym.adapters.opti`) needs ``phi(s')`` of every labelled next
    state (its least-squares update; :meth:`phi_many` for the labels queued between two
    selections) and, per selection, the successor features of 128
    candidate latents at the current state. Through the :class:`~bfm_gym.models.protocol.BFM`
    handle each call validates, converts, runs ``nn.Module`` s and, for phi, re-solves the
    ``d x d`` ridge system of
    ``Cov(B)^{-1}`` every time. Here:

    * ``phi``: B's MLP in numpy on preallocated buffers (biases folded into the weights, the
      LayerNorm centring folded into the first layer, as :class:`_NumpyFused`), projected on
      the sphere, times ``(Cov + ridge)^{-1}`` solved once in float64 at construction;
      returned as float32, as ``FBModel.phi``.
    * ``psi``: the actor's policy-mean actions, then F, for all n latents at once. What
      depends on s alone (the actor's ``embed_s`` branch and its share of the first MLP
      layer, the s columns of every first layer) is computed on one row; the first layers
      of both F embeddings of every head are two matmuls (actions into the ``sa`` groups,
      latents into the ``sz`` groups), then one LayerNorm over the ``2 E`` (branch, head)
      groups, one batched matmul per further embedding layer, one per MLP layer over the E
      heads. ``backend="numpy"`` (default, :class:`_NumpyPsi`) runs it without any torch
      op; ``"torch"`` the same ops in torch, which follow ``torch.set_num_threads``: with 2
      torch threads on 2 cores of which one is busy, a selection measured 100-500 ms
      instead of ~10 ms, each op's threads waiting for the descheduled one.

    The weights and ``Cov`` are copied at construction: build it from a frozen model (as
    OpTI's adapter does) and build a new one after changing the model.

    :meth:`build` returns None for anything else (another family, an auto-regressive B, a
    model off CPU, a layout it does not know) and when its outputs differ from the model's
    (``phi`` beyond 1e-5 relative to its scale, ``psi`` beyond 1e-4): callers then use the
    handle.
    """

    def __init__(self, model: Any, b_layers: list[tuple[np.ndarray, np.ndarray]],
                 b_ln: tuple[np.ndarray, np.ndarray, np.float32], precision: np.ndarray,
                 actor: _FusedWeights, f: _FusedF) -> None:  # fmt: skip
        self._model = model
        self.obs_dim, self.z_dim = model.obs_dim, model.z_dim
        h = b_layers[0][1].shape[1]
        self._b_in = np.ones((1, self.obs_dim + 1), np.float32)  # [s, 1]
        self._b_w0 = b_layers[0][1]
        self._b_h = np.empty((1, h), np.float32)
        self._b_ln_w, self._b_ln_b, self._b_eps = b_ln
        self._b_var = np.empty((1, 1), np.float32)
        self._b_scale = np.empty((1, h), np.float32)
        self._b_rest: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
        bufs = [np.ones((1, w.shape[0]), np.float32) for _, w in b_layers[1:]]
        for i, (_, w) in enumerate(b_layers[1:]):
            last = i == len(b_layers) - 2
            out = np.empty((1, w.shape[1]), np.float32) if last else bufs[i + 1][:, :-1]
            self._b_rest.append((bufs[i], w, out))
        self._b_first_out = bufs[0][:, :-1]
        self._b_sq = np.empty((1,), np.float32)
        self._precision_t = precision.T.copy()  # phi = b @ P^T, P = (Cov + ridge I)^{-1}
        self._radius = np.float32(np.sqrt(self.z_dim))
        self._actor = actor
        self._f = f
        self.backend = "numpy"
        self._np_psi = _NumpyPsi(actor, f, self.obs_dim)

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def build(cls, bfm: Any, *, check: bool = True) -> FBFeatures | None:
        """The fast features of ``bfm`` (a handle or an ``FBModel``), or None (see above)."""
        from bfm_gym.models.fb.model import FBModel
        from bfm_gym.models.fb.networks import BackwardMap

        model = getattr(bfm, "model", bfm)
        if (
            not isinstance(model, FBModel)
            or model.is_autoregressive
            or model.device.type != "cpu"
            or not isinstance(model.backward_map, BackwardMap)
        ):
            return None
        try:
            b = _b_weights(model.backward_map, model.obs_dim)
            f = _FusedF.build(model.forward_map, model.obs_dim, model.action_dim, model.z_dim)
        except (AttributeError, _UnknownLayout):
            return None
        actor = _FusedWeights.build(model.actor, model.obs_dim, model.z_dim)
        if actor is None:
            return None
        with torch.no_grad():
            cov = model.cov.double()
            reg = cov + 1e-6 * torch.trace(cov) / model.z_dim * torch.eye(model.z_dim,
                                                                           dtype=cov.dtype)
            precision = torch.linalg.inv(reg).numpy()
        feats = cls(model, b[0], b[1], precision, actor, f)
        if check and not feats._agrees():
            return None
        return feats

    def _agrees(self) -> bool:
        gen = torch.Generator().manual_seed(0)
        m = self._model
        for _ in range(2):
            s = torch.randn(m.obs_dim, generator=gen)
            z = m.project(torch.randn(5, m.z_dim, generator=gen))
            with torch.inference_mode():
                ref_phi = m.phi(s[None])[0].numpy()
                ref_psi = m.psi(s[None].expand(5, -1), z).numpy()
            phi = self.phi(s.numpy())
            psi = self.psi(s.numpy(), z.numpy())
            scale = max(1.0, float(np.abs(ref_phi).max()))
            if not (np.allclose(phi, ref_phi, atol=1e-5 * scale, rtol=0)
                    and np.allclose(psi, ref_psi, atol=1e-4, rtol=1e-4)):  # fmt: skip
                return False
        return True

    # -- the features -------------------------------------------------------------------------

    def phi(self, obs: np.ndarray) -> np.ndarray:
        """``phi(s) = (Cov + ridge)^{-1} B(s)`` of one state ``(obs_dim,)`` -> ``(d,)`` float32
        (a fresh array)."""
        self._b_in[0, :-1] = obs
        h = self._b_h
        np.matmul(self._b_in, self._b_w0, out=h)  # centred, scaled, bias included
        _sum_squares(h, self._b_sq)
        var = self._b_var
        var[0, 0] = self._b_sq[0] + self._b_eps
        np.sqrt(var, out=var)
        np.divide(self._b_ln_w, var, out=self._b_scale)
        h *= self._b_scale
        h += self._b_ln_b
        np.tanh(h, out=self._b_first_out)
        b = _relu_layers(self._b_rest)[0]
        norm = np.float32(np.sqrt(np.dot(b, b)))
        b = b * (self._radius / max(norm, np.float32(1e-12)))
        return (b.astype(np.float64) @ self._precision_t).astype(np.float32)

    def phi_many(self, obs: np.ndarray) -> np.ndarray:
        """:meth:`phi` of ``n`` states ``(n, obs_dim)`` -> ``(n, d)`` float32, in one pass of
        batched matmuls (equal to ``n`` calls of :meth:`phi` up to float32 rounding), with one
        BLAS thread (:mod:`bfm_gym.utils.blas`)."""
        return call_with_one_blas_thread(self._phi_many, obs)

    def _phi_many(self, obs: np.ndarray) -> np.ndarray:
        rows = np.asarray(obs, dtype=np.float32)
        x = np.concatenate([rows, np.ones((len(rows), 1), np.float32)], axis=1)
        h = x @ self._b_w0  # centred, scaled, bias included
        var = np.sqrt(_row_sum_squares(h) + self._b_eps)[:, None]
        h = np.tanh(h * (self._b_ln_w / var) + self._b_ln_b)
        for i, (_, w, _) in enumerate(self._b_rest):
            h = np.concatenate([h, np.ones((len(h), 1), np.float32)], axis=1) @ w
            if i < len(self._b_rest) - 1:
                np.maximum(h, 0.0, out=h)
        norms = np.sqrt(_row_sum_squares(h))[:, None]
        h = h * (self._radius / np.maximum(norms, np.float32(1e-12)))
        return (h.astype(np.float64) @ self._precision_t).astype(np.float32)

    def psi(self, obs: np.ndarray, z: np.ndarray) -> np.ndarray:
        """``psi_k(s, pi(s, z_i), z_i)`` for one state ``(obs_dim,)`` and latents ``(n, d)``
        (already projected) -> ``(E, n, d)`` float32.

        Everything that depends on s alone is computed once, on one row: the actor's
        ``embed_s`` branch and its share of the first MLP layer, and the s columns of the
        first layers of the actor's ``embed_sz`` and of both F embeddings."""
        if self.backend == "numpy":  # one BLAS thread: bfm_gym.utils.blas
            return call_with_one_blas_thread(self._np_psi.run, np.asarray(obs, dtype=np.float32),
                                             np.ascontiguousarray(z, dtype=np.float32))  # fmt: skip
        with torch.inference_mode():
            st = torch.from_numpy(np.ascontiguousarray(obs, dtype=np.float32))[None]
            zt = torch.from_numpy(np.ascontiguousarray(z, dtype=np.float32))
            a = self._actor_at(st, zt)
            return self._f.run(st, a, zt).numpy()

    def _actor_at(self, s: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """The fused actor's mean for one state and n latents, ``(n, action_dim)``."""
        w, od = self._actor, self.obs_dim
        h = w.h
        s_all = torch.addmm(w.b_in, s, w.w_in[:od])  # (1, 2h): both branches' s part
        ys = F_.layer_norm(s_all[:, :h], (h,), eps=w.ln_eps).mul_(w.ln_w[0]).add_(w.ln_b[0])
        ys = ys.tanh_()
        yz = torch.addmm(s_all[:, h:], z, w.w_in[od:, h:])
        yz = F_.layer_norm(yz, (h,), eps=w.ln_eps).mul_(w.ln_w[1]).add_(w.ln_b[1]).tanh_()
        for wt, b in w.embed:
            ys = torch.addmm(b[0], ys, wt[0]).relu_()
            yz = torch.addmm(b[1], yz, wt[1]).relu_()
        (w0, b0), rest = w.mlp[0], w.mlp[1:]
        half = ys.shape[1]
        y = torch.addmm(torch.addmm(b0, ys, w0[:half]), yz, w0[half:])  # == cat([s, sz]) @ w0
        for wt, b in rest:
            y = torch.addmm(b, y.relu_(), wt)
        return y.tanh_()


def _b_weights(
    net: nn.Module, obs_dim: int
) -> tuple[list[tuple[None, np.ndarray]], tuple[np.ndarray, np.ndarray, np.float32]]:
    """B's ``Linear -> LayerNorm -> tanh -> [Linear -> ReLU] x k -> Linear`` as numpy weights
    with the bias as last row (the first layer centred and scaled as :class:`_NumpyFused`)."""
    mods = list(net.net.children())
    if (
        len(mods) < 4
        or not isinstance(mods[0], nn.Linear)
        or mods[0].in_features != obs_dim
        or not isinstance(mods[1], nn.LayerNorm)
        or not mods[1].elementwise_affine
        or mods[1].bias is None
        or not isinstance(mods[2], (Tanh, nn.Tanh))
        or not isinstance(mods[-1], nn.Linear)
        or len(mods) % 2
    ):
        raise _UnknownLayout
    for lin, act in zip(mods[3:-1:2], mods[4:-1:2], strict=True):
        if not isinstance(lin, nn.Linear) or not isinstance(act, nn.ReLU):
            raise _UnknownLayout
    with torch.no_grad():
        first, norm = mods[0], mods[1]
        h = first.out_features
        w0 = torch.cat([first.weight.T, first.bias[None]]).double().numpy()
        w0 = w0 @ ((np.eye(h) - 1.0 / h) / np.sqrt(h))
        layers: list[tuple[None, np.ndarray]] = [(None, w0.astype(np.float32))]
        for lin in mods[3::2]:
            layers.append((None, torch.cat([lin.weight.T, lin.bias[None]]).numpy().copy()))
        ln_w = (norm.weight.double().numpy() * np.sqrt(h)).astype(np.float32)[None]
        ln_b = norm.bias.numpy().copy()[None]
    return layers, (ln_w, ln_b, np.float32(norm.eps))


class _FusedF:
    """The ensemble F of :class:`~bfm_gym.models.fb.networks.ForwardMap` at one state s for
    n (action, latent) rows, as few batched ops. The ``2 E`` (branch, head) groups are kept
    branch-major: ``sa_0 .. sa_{E-1}, sz_0 .. sz_{E-1}``."""

    def __init__(self, w_s: torch.Tensor, b_in: torch.Tensor, w_a: torch.Tensor,
                 w_z: torch.Tensor, ln_w: torch.Tensor, ln_b: torch.Tensor, eps: float,
                 embed: list[tuple[torch.Tensor, torch.Tensor]],
                 mlp: list[tuple[torch.Tensor, torch.Tensor]], ensemble: int, h: int) -> None:  # fmt: skip
        self.w_s, self.b_in = w_s, b_in  # (od, 2 E h), (2 E h,): the s columns of every group
        self.w_a, self.w_z = w_a, w_z  # (ad, E h) into the sa groups, (zd, E h) into the sz ones
        self.ln_w, self.ln_b, self.eps = ln_w, ln_b, eps  # (2E, h)
        self.embed, self.mlp = embed, mlp  # (2E, in, out) / (E, in, out) weights
        self.e, self.h = ensemble, h

    @classmethod
    def build(cls, fmap: nn.Module, obs_dim: int, action_dim: int, z_dim: int) -> _FusedF:
        """Rearranged weights; raises :class:`_UnknownLayout` for another layout."""
        from bfm_gym.models.fb.networks import EnsembleLayerNorm, EnsembleLinear, ForwardMap

        if not isinstance(fmap, ForwardMap):
            raise _UnknownLayout
        branches = [_ensemble_embedding(fmap.embed_sa), _ensemble_embedding(fmap.embed_sz)]
        mods = list(fmap.mlp.children())
        lins = mods[0::2]
        if not lins or len(mods) % 2 != 1 or not all(isinstance(m, EnsembleLinear) for m in lins) \
                or not all(isinstance(m, nn.ReLU) for m in mods[1::2]):  # fmt: skip
            raise _UnknownLayout
        (sa0, sa_norm), (sz0, sz_norm) = branches[0][0], branches[1][0]
        if (
            not isinstance(sa_norm, EnsembleLayerNorm)
            or not isinstance(sz_norm, EnsembleLayerNorm)
            or sa0.in_dim != obs_dim + action_dim
            or sz0.in_dim != obs_dim + z_dim
            or sa0.out_dim != sz0.out_dim
            or sa_norm.eps != sz_norm.eps
            or len(branches[0]) != len(branches[1])
        ):
            raise _UnknownLayout
        e, h, od = sa0.weight.shape[0], sa0.out_dim, obs_dim
        with torch.no_grad():
            def heads(t: torch.Tensor) -> torch.Tensor:  # (E, in, h) -> (in, E h)
                return t.transpose(0, 1).reshape(t.shape[1], -1)

            w_s = torch.cat([heads(sa0.weight[:, :od]), heads(sz0.weight[:, :od])], dim=1)
            b_in = torch.cat([sa0.bias.reshape(-1), sz0.bias.reshape(-1)])
            w_a, w_z = heads(sa0.weight[:, od:]), heads(sz0.weight[:, od:])
            ln_w = torch.cat([sa_norm.weight, sz_norm.weight])[:, 0]  # (2E, h)
            ln_b = torch.cat([sa_norm.bias, sz_norm.bias])[:, 0]
            embed = []
            for (la, _), (lz, _) in zip(branches[0][1:], branches[1][1:], strict=True):
                if la.weight.shape != lz.weight.shape:
                    raise _UnknownLayout
                embed.append((torch.cat([la.weight, lz.weight]).contiguous(),
                              torch.cat([la.bias, lz.bias]).contiguous()))
            mlp = [(lin.weight.clone(), lin.bias.clone()) for lin in lins]
        return cls(w_s.contiguous(), b_in, w_a.contiguous(), w_z.contiguous(), ln_w.clone(),
                   ln_b.clone(), float(sa_norm.eps), embed, mlp, e, h)  # fmt: skip

    def run(self, s: torch.Tensor, a: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """``(E, n, d)`` for one state ``s`` ``(1, od)``, actions ``(n, ad)``, latents ``(n, zd)``."""
        n, e, h = a.shape[0], self.e, self.h
        c = torch.addmm(self.b_in, s, self.w_s)  # (1, 2 E h), shared by every row
        eh = e * h
        y = torch.cat([torch.addmm(c[:, :eh], a, self.w_a), torch.addmm(c[:, eh:], z, self.w_z)],
                      dim=1).view(n, 2 * e, h)  # fmt: skip
        # LayerNorm on the contiguous (n, 2E, h) layout (on a transposed view it is ~10x
        # slower), then (2E, n, h) for the batched matmuls
        y = F_.layer_norm(y, (h,), eps=self.eps).mul_(self.ln_w).add_(self.ln_b).tanh_()
        y = y.transpose(0, 1)
        for w, b in self.embed:  # (2E, n, in) -> (2E, n, out)
            y = torch.baddbmm(b, y, w).relu_()
        # (2E, n, h2) -> (E, n, [sa, sz]) == cat([embed_sa, embed_sz], -1) per head
        y = y.view(2, e, n, -1).permute(1, 2, 0, 3).reshape(e, n, -1)
        last = len(self.mlp) - 1
        for i, (w, b) in enumerate(self.mlp):
            y = torch.baddbmm(b, y, w)
            if i != last:
                y = y.relu_()
        return y


def _ensemble_embedding(seq: nn.Module) -> list[tuple[Any, Any]]:
    """``[(EnsembleLinear, EnsembleLayerNorm), (EnsembleLinear, ReLU), ...]`` of an ensemble
    embedding; raises :class:`_UnknownLayout` for anything else."""
    from bfm_gym.models.fb.networks import EnsembleLayerNorm, EnsembleLinear

    mods = list(seq.children()) if isinstance(seq, nn.Sequential) else []
    if (
        len(mods) < 5
        or not isinstance(mods[0], EnsembleLinear)
        or not isinstance(mods[1], EnsembleLayerNorm)
        or not isinstance(mods[2], (Tanh, nn.Tanh))
        or (len(mods) - 3) % 2
    ):
        raise _UnknownLayout
    layers: list[tuple[Any, Any]] = [(mods[0], mods[1])]
    for lin, act in zip(mods[3::2], mods[4::2], strict=True):
        if not isinstance(lin, EnsembleLinear) or not isinstance(act, nn.ReLU):
            raise _UnknownLayout
        layers.append((lin, act))
    return layers


def _centred(w: np.ndarray, h: int) -> np.ndarray:
    """Columns of ``w`` ``(in, G h)`` centred within each group of h and scaled by 1/sqrt(h),
    in float64 then float32 (``y @ C`` == ``(y - mean(y)) / sqrt(h)`` per group; see
    :class:`_NumpyFused`)."""
    g = w.shape[1] // h
    c = (np.eye(h) - 1.0 / h) / np.sqrt(h)
    out = (w.astype(np.float64).reshape(w.shape[0], g, h) @ c).reshape(w.shape)
    return out.astype(np.float32)


class _NumpyPsi:
    """``psi`` of n latents at one state in numpy (the ops of :meth:`FBFeatures._actor_at`
    and :meth:`_FusedF.run`): no torch op, so no torch thread pool to wait on when the
    cores are shared; the LayerNorm centring is folded into the first layers as in
    :class:`_NumpyFused`. Each matmul is one BLAS call (OpenBLAS threads follow
    ``OPENBLAS_NUM_THREADS``)."""

    def __init__(self, actor: _FusedWeights, f: _FusedF, obs_dim: int) -> None:
        od, h = obs_dim, actor.h
        np32 = lambda t: t.detach().numpy().astype(np.float32, copy=True)  # noqa: E731
        # actor: embed_s on one row; embed_sz's s part on one row, its z part on n rows
        w_in = np32(actor.w_in)
        b_in = np32(actor.b_in)
        self.a_ws = _centred(np.concatenate([w_in[:od], b_in[None]]), h)  # (od + 1, 2h)
        self.a_wz = _centred(w_in[od:, h:], h)  # (zd, h)
        self.a_eps = np.float32(actor.ln_eps)
        self.a_lnw = (np32(actor.ln_w) * np.float32(np.sqrt(h)))  # (2, h)
        self.a_lnb = np32(actor.ln_b)
        self.a_embed = [(np32(w), np32(b)) for w, b in actor.embed]  # (2, in, out), (2, 1, out)
        self.a_mlp = [(np32(w), np32(b)) for w, b in actor.mlp]
        self.a_h = h
        # F: groups sa_0..sa_{E-1}, sz_0..sz_{E-1}
        fh = f.h
        self.f_ws = _centred(np.concatenate([np32(f.w_s), np32(f.b_in)[None]]), fh)
        self.f_wa, self.f_wz = _centred(np32(f.w_a), fh), _centred(np32(f.w_z), fh)
        self.f_eps = np.float32(f.eps)
        self.f_lnw = np32(f.ln_w) * np.float32(np.sqrt(fh))  # (2E, h)
        self.f_lnb = np32(f.ln_b)
        self.f_embed = [(np32(w), np32(b)) for w, b in f.embed]  # (2E, in, out), (2E, 1, out)
        self.f_mlp = [(np32(w), np32(b)) for w, b in f.mlp]  # (E, in, out), (E, 1, out)
        self.e, self.f_h = f.e, fh
        self.s1 = np.ones((1, od + 1), np.float32)

    @staticmethod
    def _ln_tanh(y: np.ndarray, lnw: np.ndarray, lnb: np.ndarray, eps: np.float32) -> None:
        """In place: LayerNorm (input centred and scaled) over the last axis, then tanh."""
        var = _vecdot(y)
        var += eps
        np.sqrt(var, out=var)
        y *= lnw / var[..., None]
        y += lnb
        np.tanh(y, out=y)

    def run(self, obs: np.ndarray, z: np.ndarray) -> np.ndarray:
        e, h, fh = self.e, self.a_h, self.f_h
        n = z.shape[0]
        self.s1[0, :-1] = obs
        # -- actor
        s_all = self.s1 @ self.a_ws  # (1, 2h): embed_s's first layer, embed_sz's s part
        ys = s_all[:, :h].copy()
        self._ln_tanh(ys, self.a_lnw[0], self.a_lnb[0], self.a_eps)
        yz = z @ self.a_wz
        yz += s_all[:, h:]
        self._ln_tanh(yz, self.a_lnw[1], self.a_lnb[1], self.a_eps)
        for w, b in self.a_embed:
            ys = ys @ w[0]
            ys += b[0]
            np.maximum(ys, 0.0, out=ys)
            yz = yz @ w[1]
            yz += b[1]
            np.maximum(yz, 0.0, out=yz)
        (w0, b0), rest = self.a_mlp[0], self.a_mlp[1:]
        half = ys.shape[1]
        y = yz @ w0[half:]
        y += ys @ w0[:half] + b0
        for w, b in rest:
            np.maximum(y, 0.0, out=y)
            y = y @ w
            y += b
        a = np.tanh(y, out=y)  # (n, ad)
        # -- F
        c = self.s1 @ self.f_ws  # (1, 2 E h)
        eh = e * fh
        g = np.empty((n, 2 * eh), np.float32)
        np.matmul(a, self.f_wa, out=g[:, :eh])
        np.matmul(z, self.f_wz, out=g[:, eh:])
        g += c
        g3 = g.reshape(n, 2 * e, fh)
        self._ln_tanh(g3, self.f_lnw, self.f_lnb, self.f_eps)
        x = g3.transpose(1, 0, 2)  # (2E, n, h)
        for w, b in self.f_embed:
            x = np.matmul(x, w)
            x += b
            np.maximum(x, 0.0, out=x)
        x = x.reshape(2, e, n, -1).transpose(1, 2, 0, 3).reshape(e, n, -1)  # (E, n, [sa, sz])
        last = len(self.f_mlp) - 1
        for i, (w, b) in enumerate(self.f_mlp):
            x = np.matmul(x, w)
            x += b
            if i != last:
                np.maximum(x, 0.0, out=x)
        return x


def _vecdot(y: np.ndarray) -> np.ndarray:
    if hasattr(np, "vecdot"):
        return np.vecdot(y, y)
    return np.einsum("...i,...i->...", y, y)  # pragma: no cover - numpy 1.x


class _NumpyBatched:
    """:class:`_NumpyFused`'s forward with one matrix product per layer for all rows.

    Same weights and input buffer; the rows of each layer go through one ``(batch, in) @ (in,
    out)`` product (per branch for the embedding layers) instead of ``batch`` vector-matrix
    products. OpenBLAS sums a matrix product's terms in another order than a vector-matrix
    one, so a row's action agrees with :class:`_NumpyFused`'s only up to float32 rounding
    (tested: within 1e-5); what it buys is speed at batch >= 4, where reading each weight
    matrix once instead of once per row halves the forward (8 rows of the "cpu" preset:
    ~40 us instead of ~71 us on the 2-core avx512_bf16 VM).
    """

    def __init__(self, fused: _NumpyFused) -> None:
        n, h = fused.y.shape[0], fused.yv.shape[2]
        self.x = fused.x[:, 0, :]  # (n, od + zd + 1), shared with the row-wise path
        self.w_in, self.eps, self.ln_w, self.ln_b = fused.w_in, fused.eps, fused.ln_w, fused.ln_b
        self.y = np.empty((n, 2 * h), np.float32)
        self.yv = self.y.reshape(n, 2, h)
        self.var = np.empty((n, 2), np.float32)
        self.var3 = self.var[:, :, None]
        self.scale = np.empty((n, 2, h), np.float32)
        # embedding layers branch-major: (2, n, in + 1) inputs ending in 1, (2, in + 1, out) weights
        bufs = [np.ones((2, n, w.shape[1]), np.float32) for _, w, _ in fused.embed]
        mlp_bufs = [np.ones((n, w.shape[0]), np.float32) for _, w in fused.mlp]
        self.tanh_in = bufs[0][:, :, :-1].transpose(1, 0, 2)  # (n, 2, h) view
        first = mlp_bufs[0][:, :-1]
        # the last embedding layer writes cat([s, sz]) of the first mlp input, branch-major
        embed_dst = [b[:, :, :-1] for b in bufs[1:]] + [first.reshape(n, 2, -1).transpose(1, 0, 2)]
        self.out = np.empty((n, fused.mlp[-1][1].shape[1]), np.float32)
        self.out2d = self.out  # what run returns
        mlp_dst = [b[:, :-1] for b in mlp_bufs[1:]] + [self.out]
        self.layers = [(b, w, d) for b, (_, w, _), d in zip(bufs, fused.embed, embed_dst, strict=True)]
        self.layers += [(b, w, d) for b, (_, w), d in zip(mlp_bufs, fused.mlp, mlp_dst, strict=True)]

    # the same ~14 numpy calls as _NumpyFused's, on these (batch, features) buffers
    run = _NumpyFused.run
