"""Small helpers with no BFM knowledge: atomic file writes (:mod:`bfm_gym.utils.io`),
``module:function`` resolution (:mod:`bfm_gym.utils.imports`), config value checks
(:mod:`bfm_gym.utils.checks`), figures (:mod:`bfm_gym.utils.plots`), what the machine is
(:mod:`bfm_gym.utils.machine`) and numpy's BLAS thread count (:mod:`bfm_gym.utils.blas`)."""
