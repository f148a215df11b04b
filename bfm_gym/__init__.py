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

from bfm_gym.envs.registration import register_envs as _register_envs
from bfm_gym.envs.registration import register_plugin_envs as _register_plugin_envs
from bfm_gym.plugins.manager import on_plugins_loaded as _on_plugins_loaded
from bfm_gym.wrappers.registration import register_latent_envs as _register_latent_envs

__version__ = "0.1.0"

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
    """Loads a BFM by shipped name (``"walker"``) or model folder; see :mod:`bfm_gym.pretrained`."""
    import os

    from bfm_gym.errors import UserError, check_device
    from bfm_gym.pretrained import load as _load

    if not isinstance(name_or_path, (str, os.PathLike)):
        raise UserError(f"bfm_gym.load needs a shipped model name (e.g. 'walker') or a model folder; "
                        f"got {type(name_or_path).__name__} {name_or_path!r}.")
    check_device(device)
    return _load(name_or_path, device=device)


__all__ = ["LatentActionWrapper", "__version__", "load", "wrap"]
