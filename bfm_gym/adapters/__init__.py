"""Adaptation methods that search the latent space of a frozen BFM.

So far: :mod:`bfm_gym.adapters.bandit`, OpTI-BFM's estimator and optimistic
selection. The adapter protocol and the built-in adapters arrive with the
adaptation issue; they register through the ``register_adapters`` plugin hook.
"""
