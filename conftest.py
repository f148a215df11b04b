"""Settings for everything pytest collects from the repository root, including the docstring
examples of ``bfm_gym/`` (``--doctest-modules``); ``tests/conftest.py`` adds the suite's own.

Installed third-party plugins stay out unless a test asks for them, and rendering uses EGL.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("BFM_GYM_LOAD_PLUGINS", "")
