"""bfm_gym: Behavioral Foundation Models as Gymnasium environments.

A Forward-Backward (FB) model is pre-trained without rewards on one domain's data;
for any reward it then gives a policy ``pi(a | s, z)`` through a task latent ``z``
inferred zero-shot. bfm_gym provides the domains and tasks, reward-free data
collection, pre-training, and adaptation of ``z`` with online interaction.

Vocabulary used throughout (from the FB papers):
    z: task latent on the sphere of radius sqrt(d), d = z_dim.
    B(s), phi(s): backward map / state features; reward r(s) ~ phi(s)^T z.
    F(s, a, z), psi: forward map / successor features; Q(s, a) = F(s, a, z)^T z.
    pi(s, z): the latent-conditioned policy.
"""

from typing import Any

from bfm_gym._version import __version__
from bfm_gym.envs.registration import register_envs as _register_envs
from bfm_gym.envs.registration import register_plugin_envs as _register_plugin_envs
from bfm_gym.plugins.manager import on_plugins_loaded as _on_plugins_loaded
from bfm_gym.wrappers.registration import register_latent_envs as _register_latent_envs

_register_envs()
_register_latent_envs()
_on_plugins_loaded(_register_plugin_envs)  # plugin domains get their ids when plugins load


def __getattr__(name: str) -> Any:
    """Lazy top-level names (importing bfm_gym stays light: no torch until needed)."""
    if name in ("LatentActionWrapper", "wrap"):
        from bfm_gym import wrappers

        return getattr(wrappers, name)
    raise AttributeError(f"module 'bfm_gym' has no attribute {name!r}")


def load(name_or_path, device: str = "cpu"):
    """Loads a BFM by shipped name (``"walker"``) or model folder; see :func:`bfm_gym.pretrained.load`."""
    from bfm_gym.pretrained import load as _load

    return _load(name_or_path, device=device)


__all__ = ["LatentActionWrapper", "__version__", "load", "wrap"]
