"""Forward-Backward (FB) behavioural foundation model, with the FB-AWARE options.

Public API:

* :class:`FBConfig` (``FBConfig.preset(domain, size)``) - architecture, losses, speed switches.
* :class:`FBModel` - B, F (ensemble), pi and the inference operations.
* :class:`OfflineReplay`, :class:`FBTrainer` - offline training with exact resume.
* :class:`FBHandle` (historical name :class:`BFM`) - the frozen numpy/torch handle; it
  implements :class:`bfm_gym.models.protocol.BFM`.
* :func:`save_model`, :func:`load_model`, :class:`CheckpointError`, :class:`ModelMetadata`.
"""

from .checkpoint import CheckpointError, ModelMetadata, load_model, save_model
from .config import DOMAINS, PRESET_SIZES, FBConfig
from .handle import BFM, FBHandle
from .model import FBModel
from .replay import OfflineReplay, TransitionBatch
from .runtime import free_cpu_cores, resolve_device, set_torch_threads
from .trainer import FBTrainer

__all__ = [
    "BFM",
    "DOMAINS",
    "PRESET_SIZES",
    "CheckpointError",
    "FBConfig",
    "FBHandle",
    "FBModel",
    "FBTrainer",
    "ModelMetadata",
    "OfflineReplay",
    "TransitionBatch",
    "free_cpu_cores",
    "load_model",
    "resolve_device",
    "save_model",
    "set_torch_threads",
]
