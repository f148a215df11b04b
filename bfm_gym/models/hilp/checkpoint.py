"""HILP model folders (format ``"bfm_gym.hilp"``): the generic layout and checks of
:mod:`bfm_gym.models.checkpoint` (atomic writes, a versioned ``config.json``, the config
validated on load, every tensor's key, shape, dtype and finiteness checked, every problem a
:class:`~bfm_gym.models.checkpoint.CheckpointError`), with no fields of HILP's own; the
weights hold phi_1, phi_2, psi, pi and the ``phi_mean`` buffer.
"""

from __future__ import annotations

from bfm_gym.models.checkpoint import ModelFolder

from .config import HILPConfig
from .model import HILPModel

__all__ = ["FOLDER", "FORMAT_NAME", "FORMAT_VERSION", "load_model", "save_model", "write_model_files"]

FORMAT_NAME = "bfm_gym.hilp"
"""Value of ``config.json["format"]``."""
FORMAT_VERSION = 1
SUPPORTED_FORMAT_VERSIONS = (1,)

FOLDER = ModelFolder(format_name=FORMAT_NAME, label="HILP", model_class=HILPModel,
                     config_class=HILPConfig, supported_versions=SUPPORTED_FORMAT_VERSIONS,
                     format_version=FORMAT_VERSION)
"""How HILP model folders are written and read."""


load_model = FOLDER.load
"""``load_model(path, device="cpu") -> (HILPModel, ModelMetadata)``: :meth:`ModelFolder.load`."""
save_model = FOLDER.save
"""``save_model(model, path, metadata=None) -> Path``: :meth:`ModelFolder.save`."""
write_model_files = FOLDER.write_files
"""``write_model_files(folder, model, metadata)``: :meth:`ModelFolder.write_files`."""
