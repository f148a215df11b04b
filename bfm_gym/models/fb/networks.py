"""Networks of the FB model: the backward map B, the forward map F (an ensemble) and the actor pi.

Architectures follow docs/algorithms.md#fb-networks (metamotivo ``nn_models.py``):

* ``B(s)``: Linear(h) -> LayerNorm -> tanh -> [Linear(h) -> ReLU] x (L-1) -> Linear(d) -> proj.
* ``F(s, a, z)``: ``embed_sa = MLP([s, a])`` and ``embed_sz = MLP([s, z])`` (each Linear(h) ->
  LayerNorm -> tanh -> [Linear(h) -> ReLU] x (layers-2) -> Linear(h/2) -> ReLU), concatenated,
  then [Linear(h) -> ReLU] x hidden_layers -> Linear(d). E heads, evaluated in one batched
  pass: parameters carry a leading ensemble dimension and each layer is one ``baddbmm``.
* ``pi(s, z)``: ``embed_s = MLP(s)`` and ``embed_sz = MLP([s, z])``, concatenated, an MLP, then
  tanh gives the mean; actions add Gaussian noise (std 0.2) clipped to +-0.3, then clip to [-1, 1].

Initialisation (metamotivo ``weight_init``): orthogonal weights with gain 1 for single layers and
gain sqrt(2) for ensemble layers, zero biases, LayerNorm weight 1 / bias 0.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F_
from torch import nn

from bfm_gym.models.ops import project_sphere, sample_action

__all__ = [
    "ARBackwardMap",
    "Actor",
    "BackwardMap",
    "EnsembleLayerNorm",
    "EnsembleLinear",
    "ForwardMap",
    "LoopedForwardMap",
    "Tanh",
    "build_forward_map",
    "project_sphere",
    "sample_action",
]


class Tanh(nn.Module):
    """``torch.tanh`` as a module (the embeddings' activation after LayerNorm).

    Earlier versions computed ``2 sigmoid(2x) - 1`` on CPU, which was faster than ATen's AVX2
    tanh at the time; with torch 2.13 ATen's tanh is the faster one at every kernel level
    (one core, (2, 512, 256) fp32: tanh 0.10 ms vs 0.30 ms with AVX-512 kernels, 0.13 ms vs
    0.58 ms with ``ATEN_CPU_CAPABILITY=avx2``), so this is plain tanh again. The two agree to
    < 3e-7, and the class keeps its name so saved models and the layout checks of
    :mod:`~bfm_gym.models.fb.fast_policy` stay valid.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x)


def _norm_tanh_heads(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float, out_dtype: torch.dtype
) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """``tanh(LayerNorm_e(x[e]))`` for each head e of an ensemble LayerNorm (weight and bias
    ``(E, 1, dim)``, x already in their dtype), written into one tensor of ``out_dtype``.

    Returns the output and, for the backward, the heads' tanh outputs, means and rstds."""
    shape = (x.shape[-1],)
    out = torch.empty(x.shape, dtype=out_dtype, device=x.device)
    ts, means, rstds = [], [], []
    for e in range(x.shape[0]):
        t, mean, rstd = torch.native_layer_norm(x[e], shape, weight[e, 0], bias[e, 0], eps)
        out[e].copy_(t.tanh_())
        ts.append(t)
        means.append(mean)
        rstds.append(rstd)
    return out, ts + means + rstds


class _LayerNormTanh(torch.autograd.Function):
    """``tanh(LayerNorm(x) * weight + bias)`` with a hand-written backward.

    The normalisation, affine and tanh run in fp32 (the weights' dtype; under bf16 autocast x
    is cast up once) and the result is returned in x's dtype; the backward saves the fp32 tanh
    output, as autograd would. An ensemble LayerNorm runs one ATen LayerNorm per head, each
    with its head's affine inside the kernel: fp32 statistics instead of bf16 ones (closer to
    the fp32 result) and no broadcast ``addcmul`` (fwd + bwd of a (2, 512, 256) bf16 input,
    one core of an avx512_bf16 CPU: ~1.0 ms, was ~1.3 ms with bf16 statistics and a
    broadcast affine).
    :func:`_layer_norm_tanh_ops` is the same computation in plain ops (``torch.compile``, CUDA). What it saves over the
    unfused ops under bf16 autocast: the unfused ensemble path multiplies bf16 by fp32 tensors
    (addcmul forward, and its backward), which ATen runs ~10x slower than a single-dtype op;
    its backward also runs extra passes and casts; on a single LayerNorm (``nn.LayerNorm``)
    autocast ran tanh in bf16, ~3x slower than in fp32 on CPU. ``weight``/``bias`` broadcast
    against x: ``(dim,)`` or ``(E, 1, dim)``.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor,
        eps: float,
    ) -> torch.Tensor:
        in_dtype, shape = x.dtype, (x.shape[-1],)
        # one dtype per elementwise op: mixed bf16/fp32 operands take ATen's slow path (~10x);
        # ATen's LayerNorm with an affine runs the affine inside its kernel, and is faster with
        # one than without (fp32 (512, 256): 51 us per head with it, 90 without)
        x = x.to(weight.dtype)
        if weight.dim() == 1:  # one LayerNorm
            t, mean, rstd = torch.native_layer_norm(x, shape, weight, bias, eps)
            t = t.tanh_()
            ctx.save_for_backward(x, weight, bias, t, mean, rstd)
            ctx.heads = 0  # type: ignore[attr-defined]
            ctx.in_dtype = in_dtype  # type: ignore[attr-defined]
            return t.to(in_dtype)
        out, saved = _norm_tanh_heads(x, weight, bias, eps, in_dtype)
        ctx.save_for_backward(x, weight, bias, *saved)
        ctx.heads = x.shape[0]  # type: ignore[attr-defined]
        ctx.in_dtype = in_dtype  # type: ignore[attr-defined]
        return out

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: torch.autograd.function.FunctionCtx, grad: torch.Tensor
    ) -> tuple[torch.Tensor | None, ...]:
        x, weight, bias, *rest = ctx.saved_tensors  # type: ignore[attr-defined]
        need_x, need_w, need_b, _ = ctx.needs_input_grad  # type: ignore[attr-defined]
        mask = [need_x, need_w, need_b]
        in_dtype, heads = ctx.in_dtype, ctx.heads  # type: ignore[attr-defined]
        shape = (x.shape[-1],)
        grad = grad.to(x.dtype)
        if heads == 0:  # one LayerNorm
            t, mean, rstd = rest
            gt = torch.ops.aten.tanh_backward(grad, t)
            gx, gw, gb = torch.ops.aten.native_layer_norm_backward(
                gt, x, shape, mean, rstd, weight, bias, mask
            )
            return (gx.to(in_dtype) if gx is not None else None), gw, gb, None
        ts, means, rstds = rest[:heads], rest[heads : 2 * heads], rest[2 * heads :]
        gx = torch.empty(x.shape, dtype=in_dtype, device=x.device) if need_x else None
        gws, gbs = [], []
        for e in range(heads):
            gt = torch.ops.aten.tanh_backward(grad[e], ts[e])
            gx_e, gw_e, gb_e = torch.ops.aten.native_layer_norm_backward(
                gt, x[e], shape, means[e], rstds[e], weight[e, 0], bias[e, 0], mask
            )
            if gx is not None:
                gx[e].copy_(gx_e)
            gws.append(gw_e)
            gbs.append(gb_e)
        gw = torch.stack(gws).unsqueeze(1) if need_w else None
        gb = torch.stack(gbs).unsqueeze(1) if need_b else None
        return gx, gw, gb, None


def _layer_norm_tanh_ops(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float
) -> torch.Tensor:
    """:class:`_LayerNormTanh` in plain ops, with the same dtypes and kernels at every step (so
    a compiled update stays as close to the eager one as before): x is normalised in the
    weights' dtype by one LayerNorm (with its affine) per head, then tanh; the result is in
    x's dtype."""
    shape, in_dtype = (x.shape[-1],), x.dtype
    x = x.to(weight.dtype)
    if weight.dim() == 1:
        return torch.tanh(F_.layer_norm(x, shape, weight, bias, eps)).to(in_dtype)
    heads = [
        torch.tanh(F_.layer_norm(x[e], shape, weight[e, 0], bias[e, 0], eps))
        for e in range(x.shape[0])
    ]
    return torch.stack(heads).to(in_dtype)


class _NormTanhSequential(nn.Sequential):
    """``nn.Sequential`` of ``[Linear, LayerNorm, Tanh, ...]`` whose LayerNorm and Tanh run as
    one :class:`_LayerNormTanh` (same children, state_dict keys and outputs up to rounding).

    On CPU in eager mode the fused op runs when gradients are recorded, and an ensemble
    LayerNorm without gradients runs its forward (:func:`_norm_tanh_heads`) without the
    Function's overhead; elsewhere (CUDA, ``torch.compile``, a single LayerNorm without
    gradients) the same computation runs as plain ops (:func:`_layer_norm_tanh_ops`,
    bit-identical on CPU)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        mods = list(self)
        norm = mods[1]
        x = mods[0](x)
        if x.device.type != "cpu" or torch.compiler.is_compiling():
            x = _layer_norm_tanh_ops(x, norm.weight, norm.bias, norm.eps)
        elif torch.is_grad_enabled():
            x = _LayerNormTanh.apply(x, norm.weight, norm.bias, norm.eps)
        elif norm.weight.dim() == 3:  # no backward to save: skip the Function's overhead
            x = _norm_tanh_heads(x.to(norm.weight.dtype), norm.weight, norm.bias, norm.eps, x.dtype)[0]
        else:
            x = _layer_norm_tanh_ops(x, norm.weight, norm.bias, norm.eps)
        for module in mods[3:]:
            x = module(x)
        return x


def _linear(in_dim: int, out_dim: int, gain: float = 1.0) -> nn.Linear:
    layer = nn.Linear(in_dim, out_dim)
    nn.init.orthogonal_(layer.weight, gain=gain)
    nn.init.zeros_(layer.bias)
    return layer


def norm_tanh_mlp(in_dim: int, out_dim: int, hidden_dim: int, hidden_layers: int) -> nn.Sequential:
    """``Linear(h) -> LayerNorm -> tanh -> [Linear(h) -> ReLU] x (L-1) -> Linear(out)`` with the
    LayerNorm and tanh fused (:class:`_NormTanhSequential`): B's body, and HILP's phi."""
    seq: list[nn.Module] = [_linear(in_dim, hidden_dim), nn.LayerNorm(hidden_dim), Tanh()]
    seq += [m for _ in range(hidden_layers - 1) for m in (_linear(hidden_dim, hidden_dim), nn.ReLU())]
    seq += [_linear(hidden_dim, out_dim)]
    return _NormTanhSequential(*seq)


# ------------------------------------------------------------------------------------------------
# Ensemble layers: parameters with a leading ensemble dimension E
# ------------------------------------------------------------------------------------------------


class EnsembleLinear(nn.Module):
    """E independent linear layers applied in one ``baddbmm``.

    Args:
        in_dim: Input features.
        out_dim: Output features.
        ensemble: Number of heads E.

    Shapes:
        input ``(E, batch, in_dim)`` (an expanded view is fine), output ``(E, batch, out_dim)``.
        ``weight`` is ``(E, in_dim, out_dim)``, ``bias`` is ``(E, 1, out_dim)``.
    """

    def __init__(self, in_dim: int, out_dim: int, ensemble: int) -> None:
        super().__init__()
        self.in_dim, self.out_dim, self.ensemble = in_dim, out_dim, ensemble
        self.weight = nn.Parameter(torch.empty(ensemble, in_dim, out_dim))
        self.bias = nn.Parameter(torch.zeros(ensemble, 1, out_dim))
        with torch.no_grad():
            for k in range(ensemble):
                # orthogonal on the (out, in) matrix of each head, as nn.Linear would hold it
                self.weight[k].copy_(
                    nn.init.orthogonal_(torch.empty(out_dim, in_dim), gain=math.sqrt(2.0)).T
                )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.baddbmm(self.bias, x, self.weight)

    def extra_repr(self) -> str:
        return f"in_dim={self.in_dim}, out_dim={self.out_dim}, ensemble={self.ensemble}"


class EnsembleLayerNorm(nn.Module):
    """LayerNorm with per-head affine parameters ``(E, 1, dim)``; input ``(E, batch, dim)``."""

    def __init__(self, dim: int, ensemble: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.dim, self.eps = dim, eps
        self.weight = nn.Parameter(torch.ones(ensemble, 1, dim))
        self.bias = nn.Parameter(torch.zeros(ensemble, 1, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addcmul(self.bias, F_.layer_norm(x, (self.dim,), eps=self.eps), self.weight)


def _embedding(
    in_dim: int, hidden_dim: int, layers: int, ensemble: int | None = None, gain: float = 1.0
) -> nn.Sequential:
    """Linear(h) -> LayerNorm -> tanh -> [Linear(h) -> ReLU] x (layers-2) -> Linear(h/2) -> ReLU."""
    if ensemble is None:
        norm = nn.LayerNorm

        def lin(i: int, o: int) -> nn.Linear:
            return _linear(i, o, gain)

        seq: list[nn.Module] = [lin(in_dim, hidden_dim), norm(hidden_dim), Tanh()]
        seq += [m for _ in range(layers - 2) for m in (lin(hidden_dim, hidden_dim), nn.ReLU())]
        seq += [lin(hidden_dim, hidden_dim // 2), nn.ReLU()]
        return _NormTanhSequential(*seq)
    seq = [
        EnsembleLinear(in_dim, hidden_dim, ensemble),
        EnsembleLayerNorm(hidden_dim, ensemble),
        Tanh(),
    ]
    seq += [
        m
        for _ in range(layers - 2)
        for m in (EnsembleLinear(hidden_dim, hidden_dim, ensemble), nn.ReLU())
    ]
    seq += [EnsembleLinear(hidden_dim, hidden_dim // 2, ensemble), nn.ReLU()]
    return _NormTanhSequential(*seq)


# ------------------------------------------------------------------------------------------------
# B
# ------------------------------------------------------------------------------------------------


class BackwardMap(nn.Module):
    """``B(s) -> R^d`` with outputs on the sphere of radius sqrt(d).

    Args:
        in_dim: Input size (observation size, plus the conditioning z prefix for AR blocks).
        out_dim: Output size d.
        hidden_dim: Width of the hidden layers.
        hidden_layers: Number of hidden layers L >= 1.

    Shapes:
        ``(batch, in_dim) -> (batch, out_dim)``; any leading dimensions are kept.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int, hidden_layers: int) -> None:
        super().__init__()
        self.net = norm_tanh_mlp(in_dim, out_dim, hidden_dim, hidden_layers)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return project_sphere(self.net(obs))


class ARBackwardMap(nn.Module):
    """Auto-regressive ``B(s, z) = (B^1(s), B^2(s, z^1), ..., B^K(s, z^{1:K-1}))`` (FB-AWARE, docs/algorithms.md#fb-aware-ar).

    z is split into K blocks of sizes ``block_sizes``; block k is a :class:`BackwardMap` whose
    input is ``[s, z^{1:k-1}]`` and whose output has size d_k.

    Normalisation (our choice; the paper's is UNVERIFIED): each block output is projected on the
    sphere of radius sqrt(d_k). The concatenation then always has norm sqrt(d), as plain FB
    features do, and every block is a unit-scale feature on its own, which keeps the block-wise
    task inference ``z^k = proj_k(E[r B^k(s, z^{1:k-1})])`` well scaled. The z that conditions
    the blocks is normalised the same way (see ``FBModel.project``), so training (teacher
    forcing with the training z) and inference (the inferred blocks) see the same inputs.

    Args:
        obs_dim: Observation size.
        block_sizes: ``(d_1, ..., d_K)``, summing to d.
        hidden_dim: Width of every block's hidden layers.
        hidden_layers: Hidden layers of every block.
    """

    def __init__(
        self, obs_dim: int, block_sizes: tuple[int, ...], hidden_dim: int, hidden_layers: int
    ) -> None:
        super().__init__()
        self.block_sizes = tuple(block_sizes)
        offsets = [0]
        for size in self.block_sizes:
            offsets.append(offsets[-1] + size)
        self.offsets = tuple(offsets)
        self.blocks = nn.ModuleList(
            BackwardMap(obs_dim + self.offsets[k], size, hidden_dim, hidden_layers)
            for k, size in enumerate(self.block_sizes)
        )

    def block(self, k: int, obs: torch.Tensor, z_prefix: torch.Tensor | None) -> torch.Tensor:
        """Block k (0-based) of B.

        Args:
            k: Block index.
            obs: ``(..., obs_dim)``.
            z_prefix: ``(..., offsets[k])`` the earlier z blocks (``None`` for k = 0).

        Returns:
            ``(..., block_sizes[k])`` on the sphere of radius sqrt(d_k).
        """
        x = obs if k == 0 else torch.cat([obs, z_prefix], dim=-1)  # type: ignore[list-item]
        return self.blocks[k](x)

    def forward(self, obs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """B(s, z) with every block conditioned on the given z (teacher forcing).

        Args:
            obs: ``(..., obs_dim)``.
            z: ``(..., d)``, broadcastable against ``obs``'s leading dimensions.

        Returns:
            ``(..., d)``.
        """
        lead = torch.broadcast_shapes(obs.shape[:-1], z.shape[:-1])
        obs = obs.expand(*lead, obs.shape[-1])
        z = z.expand(*lead, z.shape[-1])
        return torch.cat(
            [self.block(k, obs, z[..., : self.offsets[k]]) for k in range(len(self.blocks))], dim=-1
        )


# ------------------------------------------------------------------------------------------------
# F
# ------------------------------------------------------------------------------------------------


class ForwardMap(nn.Module):
    """Ensemble ``F_k(s, a, z) -> R^d``, k = 1..E, in one batched pass.

    Args:
        obs_dim: Observation size.
        action_dim: Action size.
        z_dim: Latent size d.
        hidden_dim: Width h.
        hidden_layers: Linear(h)-ReLU layers after the embeddings.
        embedding_layers: Layers of each embedding (>= 2).
        ensemble: Number of heads E.

    Shapes:
        ``obs (batch, obs_dim), action (batch, action_dim), z (batch, d) -> (E, batch, d)``.
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        z_dim: int,
        hidden_dim: int,
        hidden_layers: int,
        embedding_layers: int,
        ensemble: int,
    ) -> None:
        super().__init__()
        self.ensemble = ensemble
        self.embed_sa = _embedding(obs_dim + action_dim, hidden_dim, embedding_layers, ensemble)
        self.embed_sz = _embedding(obs_dim + z_dim, hidden_dim, embedding_layers, ensemble)
        seq: list[nn.Module] = [
            m
            for _ in range(hidden_layers)
            for m in (EnsembleLinear(hidden_dim, hidden_dim, ensemble), nn.ReLU())
        ]
        seq += [EnsembleLinear(hidden_dim, z_dim, ensemble)]
        self.mlp = nn.Sequential(*seq)

    def forward(self, obs: torch.Tensor, action: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        sa = torch.cat([obs, action], dim=-1).expand(self.ensemble, -1, -1)
        sz = torch.cat([obs, z], dim=-1).expand(self.ensemble, -1, -1)
        return self.mlp(torch.cat([self.embed_sa(sa), self.embed_sz(sz)], dim=-1))


class _SingleForwardMap(nn.Module):
    """One F head built from ``nn.Linear`` layers (a member of :class:`LoopedForwardMap`)."""

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        z_dim: int,
        hidden_dim: int,
        hidden_layers: int,
        embedding_layers: int,
    ) -> None:
        super().__init__()
        gain = math.sqrt(2.0)  # as the batched ensemble layers
        self.embed_sa = _embedding(obs_dim + action_dim, hidden_dim, embedding_layers, gain=gain)
        self.embed_sz = _embedding(obs_dim + z_dim, hidden_dim, embedding_layers, gain=gain)
        seq: list[nn.Module] = [
            m
            for _ in range(hidden_layers)
            for m in (_linear(hidden_dim, hidden_dim, gain), nn.ReLU())
        ]
        seq += [_linear(hidden_dim, z_dim, gain)]
        self.mlp = nn.Sequential(*seq)

    def forward(self, obs: torch.Tensor, action: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        sa = self.embed_sa(torch.cat([obs, action], dim=-1))
        sz = self.embed_sz(torch.cat([obs, z], dim=-1))
        return self.mlp(torch.cat([sa, sz], dim=-1))


class LoopedForwardMap(nn.Module):
    """Same maps as :class:`ForwardMap`, one independent module per head, run in a python loop.

    Only the speed benchmark's baseline uses it (``FBConfig.ensemble_mode="looped"``).
    :meth:`load_from_batched` copies the weights of a :class:`ForwardMap` so both give the same
    outputs.
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        z_dim: int,
        hidden_dim: int,
        hidden_layers: int,
        embedding_layers: int,
        ensemble: int,
    ) -> None:
        super().__init__()
        self.ensemble = ensemble
        self.heads = nn.ModuleList(
            _SingleForwardMap(
                obs_dim, action_dim, z_dim, hidden_dim, hidden_layers, embedding_layers
            )
            for _ in range(ensemble)
        )

    def forward(self, obs: torch.Tensor, action: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return torch.stack([head(obs, action, z) for head in self.heads])

    @torch.no_grad()
    def load_from_batched(self, batched: ForwardMap) -> None:
        """Copy head k of ``batched`` into ``self.heads[k]`` for every k."""
        for k, head in enumerate(self.heads):
            for name in ("embed_sa", "embed_sz", "mlp"):
                for dst, src in zip(getattr(head, name), getattr(batched, name), strict=True):
                    if isinstance(src, EnsembleLinear):
                        dst.weight.copy_(src.weight[k].T)
                        dst.bias.copy_(src.bias[k, 0])
                    elif isinstance(src, EnsembleLayerNorm):
                        dst.weight.copy_(src.weight[k, 0])
                        dst.bias.copy_(src.bias[k, 0])


def build_forward_map(
    mode: str,
    obs_dim: int,
    action_dim: int,
    z_dim: int,
    hidden_dim: int,
    hidden_layers: int,
    embedding_layers: int,
    ensemble: int,
) -> ForwardMap | LoopedForwardMap:
    """F for ``FBConfig.ensemble_mode`` (``"batched"`` or ``"looped"``)."""
    cls = {"batched": ForwardMap, "looped": LoopedForwardMap}[mode]
    return cls(obs_dim, action_dim, z_dim, hidden_dim, hidden_layers, embedding_layers, ensemble)


# ------------------------------------------------------------------------------------------------
# pi
# ------------------------------------------------------------------------------------------------


class Actor(nn.Module):
    """Latent-conditioned policy mean ``mu = tanh(MLP([embed_s(s), embed_sz(s, z)]))``.

    Shapes:
        ``obs (batch, obs_dim), z (batch, d) -> mu (batch, action_dim)`` in [-1, 1].
    """

    def __init__(
        self,
        obs_dim: int,
        z_dim: int,
        action_dim: int,
        hidden_dim: int,
        hidden_layers: int,
        embedding_layers: int,
    ) -> None:
        super().__init__()
        self.embed_s = _embedding(obs_dim, hidden_dim, embedding_layers)
        self.embed_sz = _embedding(obs_dim + z_dim, hidden_dim, embedding_layers)
        seq: list[nn.Module] = [
            m for _ in range(hidden_layers) for m in (_linear(hidden_dim, hidden_dim), nn.ReLU())
        ]
        seq += [_linear(hidden_dim, action_dim)]
        self.mlp = nn.Sequential(*seq)

    def forward(self, obs: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        s = self.embed_s(obs)
        sz = self.embed_sz(torch.cat([obs, z], dim=-1))
        return torch.tanh(self.mlp(torch.cat([s, sz], dim=-1)))
