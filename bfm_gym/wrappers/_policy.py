"""Policy runners used by the latent wrappers.

The wrappers ask the model for one (:meth:`bfm_gym.models.protocol.BFM.policy_runner`): the
FB and HILP families return the fused actor of :mod:`bfm_gym.models.fb.fast_policy`, other
families may return the generic :class:`ActRunner`. ``PolicyRunner`` is re-exported here for
code written before the model families.
"""

from bfm_gym.models._handle import ActRunner
from bfm_gym.models.fb.fast_policy import PolicyRunner

__all__ = ["ActRunner", "PolicyRunner"]
