"""bfm-gym-cem: cross-entropy-method search over the task latent z, as a bfm_gym plugin.

A complete, small plugin package to copy: ``cem.py`` holds the adapter and its config,
``plugin.py`` registers it, ``pyproject.toml`` names ``plugin.py`` as an entry point of
the group ``bfm_gym``.
"""

__version__ = "0.1.0"
