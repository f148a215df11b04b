"""HILP: Hilbert foundation policies (Park, Kreiman, Levine, ICML 2024), the second model family.

Public API:

* :class:`HILPConfig` (``HILPConfig.preset(domain, size)``) - architecture and training settings,
  defaults from the official code (each field names its source).
* :class:`HILPModel` - phi_1, phi_2, psi (E heads), pi and the inference operations.
* :class:`GoalReplay`, :class:`HILPTrainer` - offline training with goal sampling and exact resume.
* :class:`HILPHandle` - the frozen handle (:class:`bfm_gym.models.protocol.BFM`).
* :func:`save_model`, :func:`load_model` (format ``"bfm_gym.hilp"``).
"""

from .checkpoint import FORMAT_NAME, load_model, save_model
from .config import HILPConfig
from .handle import HILPHandle
from .model import HILPModel
from .replay import GoalBatch, GoalReplay
from .trainer import HILPTrainer

__all__ = [
    "FORMAT_NAME",
    "GoalBatch",
    "GoalReplay",
    "HILPConfig",
    "HILPHandle",
    "HILPModel",
    "HILPTrainer",
    "load_model",
    "save_model",
]
