"""Weight averaging of a training run: an exponential moving average (EMA) kept while training,
and the uniform average of saved checkpoints.

FB's zero-shot returns swing from checkpoint to checkpoint (the walker run behind the shipped
model went from 449 to 260 and back between neighbouring 5k-update checkpoints), so the
weights of one update are a noisy pick. Averaging weights over a window of updates (Polyak
averaging; "SWA" when the average is over checkpoints) is the usual remedy. Neither changes
training: the average is a side copy, read only when a model is exported.

* :class:`WeightEMA`: ``ema <- ema + rate * (w - ema)`` after every update, with
  ``rate = max(ema_tau, 1 / n)`` over the n updates averaged so far, i.e. the plain mean of
  the first ``1 / ema_tau`` updates, then an EMA with horizon ~``1 / ema_tau`` updates (no
  pull towards the initial weights).
* :func:`average_state_dicts`: the uniform mean of saved weights (``bfm-gym export --average K``).

Both cover the model's parameters only. Buffers computed from the weights (FB's
``cov = E[B B^T]``) are computed again for the averaged weights when the model is finalized.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import nn

__all__ = ["WeightEMA", "average_state_dicts"]


class WeightEMA:
    """An exponential moving average of a module's parameters (see the module docstring).

    Args:
        module: The online module; its parameters at construction start the average.
        tau: The EMA rate once more than ``1 / tau`` updates are averaged, in (0, 1].

    Attributes:
        count: Updates averaged so far (the initial weights count as the first).
    """

    PREFIX = "ema."
    """Key prefix of the averaged tensors in a training checkpoint."""

    def __init__(self, module: nn.Module, tau: float) -> None:
        if not 0.0 < tau <= 1.0:
            raise ValueError(f"WeightEMA: tau must be in (0, 1], got {tau}")
        self.tau = float(tau)
        self._names = [n for n, _ in module.named_parameters()]
        self._online = [p for _, p in module.named_parameters()]
        self.averaged = [p.detach().clone() for p in self._online]
        self.count = 1

    @torch.no_grad()
    def update(self) -> None:
        """Fold the online parameters' current values into the average."""
        self.count += 1
        torch._foreach_lerp_(self.averaged, self._online, max(self.tau, 1.0 / self.count))

    def tensors(self) -> dict[str, torch.Tensor]:
        """The averaged parameters keyed ``ema.<parameter name>`` (a checkpoint's entries)."""
        return {self.PREFIX + n: t for n, t in zip(self._names, self.averaged, strict=True)}

    def load_tensors(self, tensors: Mapping[str, torch.Tensor], count: int) -> None:
        """Restore :meth:`tensors` and :attr:`count` (``KeyError`` names a missing entry)."""
        with torch.no_grad():
            for name, t in zip(self._names, self.averaged, strict=True):
                t.copy_(tensors[self.PREFIX + name])
        self.count = int(count)

    def state_dict_of(self, module: nn.Module) -> dict[str, torch.Tensor]:
        """``module.state_dict()`` with the averaged parameters in place of the online ones
        (buffers as they are)."""
        state = module.state_dict()
        state.update(dict(zip(self._names, self.averaged, strict=True)))
        return state


def average_state_dicts(states: Sequence[Mapping[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The uniform mean of state dicts of one architecture.

    Floating-point tensors are averaged in float64 and cast back; other tensors (counters) are
    the last state's.

    Raises:
        ValueError: No states, or states whose tensors differ in names or shapes.
    """
    if not states:
        raise ValueError("average_state_dicts: no states to average")
    last = states[-1]
    for i, state in enumerate(states):
        if state.keys() != last.keys() or any(state[k].shape != v.shape for k, v in last.items()):
            raise ValueError(f"average_state_dicts: state {i} has other tensors than the last "
                             "(names or shapes); average weights of one architecture")
    return {k: (torch.stack([s[k].double() for s in states]).mean(0).to(v.dtype)
                if v.is_floating_point() else v.clone())
            for k, v in last.items()}
