"""Small helpers with no BFM knowledge: atomic file writes (:mod:`bfm_gym.utils.io`) and
``module:function`` resolution (:mod:`bfm_gym.utils.imports`)."""
