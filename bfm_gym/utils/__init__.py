"""Small helpers with no BFM knowledge: atomic file writes (:mod:`bfm_gym.utils.io`),
``module:function`` resolution (:mod:`bfm_gym.utils.imports`) and config value checks
(:mod:`bfm_gym.utils.checks`)."""
