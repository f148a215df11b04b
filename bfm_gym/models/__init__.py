"""Behavioural foundation models: the family-independent boundary and the built-in families.

* :mod:`bfm_gym.models.protocol` - the :class:`~bfm_gym.models.protocol.BFM` protocol, the one
  model API that wrappers, adapters, experiments and plugins rely on.
* :mod:`bfm_gym.models.inference` - zero-shot z from dataset labels, online samples and goals.
* :mod:`bfm_gym.models.registry` - families by ``config.json`` format (``register_families``).
* :mod:`bfm_gym.models.checkpoint` - model folders of every family (:class:`ModelFolder`:
  ``config.json`` + ``model.safetensors``, validated on load), :class:`CheckpointError`,
  :class:`ModelMetadata`.
* What the built-in families share, each in one place: ``_config.py`` (``FamilyConfig``:
  JSON round trip, presets' domain/size checks), ``_model.py`` (``FamilyModel``: latent
  sphere, ``act``/``forward``/``psi``/``q``), ``_handle.py`` (``FamilyHandle``: the array
  boundary, persistence, shared operations), ``_trainer.py`` (``FamilyTrainer``: the training
  loop, snapshots, checkpoints and exact resume), :mod:`~bfm_gym.models.runtime` (device,
  threads, mixed precision) and :mod:`~bfm_gym.models.ops` (latent sphere, noisy actions).
* :mod:`bfm_gym.models.fb` - Forward-Backward and FB-AWARE; :mod:`bfm_gym.models.hilp` - HILP.
  Each gives only its own maths: config fields, networks, losses, one update, inference.

``bfm_gym.models.BFM`` is kept as the historical name of the FB handle
(:class:`~bfm_gym.models.fb.FBHandle`), so ``BFM(FBModel(...))`` still works; type new code
against :class:`bfm_gym.models.protocol.BFM`.
"""

from .fb import (
    BFM,
    CheckpointError,
    FBConfig,
    FBHandle,
    FBModel,
    FBTrainer,
    ModelMetadata,
    OfflineReplay,
    load_model,
    save_model,
)
from ._config import FamilyConfig
from ._handle import ActRunner
from ._trainer import FamilyTrainer
from .protocol import BFM as BFMProtocol
from .registry import Family, families, load_folder

__all__ = [
    "BFM",
    "ActRunner",
    "BFMProtocol",
    "CheckpointError",
    "FBConfig",
    "FBHandle",
    "FBModel",
    "FBTrainer",
    "Family",
    "FamilyConfig",
    "FamilyTrainer",
    "ModelMetadata",
    "OfflineReplay",
    "families",
    "load_folder",
    "load_model",
    "save_model",
]
