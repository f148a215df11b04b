"""Adaptation methods: improve the task latent z of a frozen BFM with online interaction.

* :mod:`bfm_gym.adapters.base` - the adapter protocol (:class:`~bfm_gym.adapters.base.Adapter`,
  its config base and :class:`~bfm_gym.adapters.base.AdapterNeeds`), which plugins implement too.
* :mod:`bfm_gym.adapters.zero_shot` - ``zero-shot``: z inferred from reward labels, held fixed.
* :mod:`bfm_gym.adapters.rela` - ``rela``: residual latent adaptation.
* :mod:`bfm_gym.adapters.lola` - ``lola``: lookahead latent adaptation (needs state resets).
* :mod:`bfm_gym.adapters.opti` - ``opti``: OpTI-BFM, with its estimator in
  :mod:`bfm_gym.adapters.bandit`.

The built-ins register through the ``register_adapters`` plugin hook
(:mod:`bfm_gym.builtin_plugin`), exactly as a plugin's adapters do; all of them are in
``bfm_gym.plugins.load_plugins().adapters``. The methods are described in docs/algorithms.md and
compared in docs/adapters.md.
"""
