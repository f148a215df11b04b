"""bfm-gym-sb3: Stable-Baselines3 adapters for bfm_gym, registered through the ``bfm_gym``
entry-point group (see :mod:`bfm_gym_sb3.plugin`)."""

__version__ = "0.1.0"
