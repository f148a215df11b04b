"""The ``bfm-gym`` command line (click)."""
