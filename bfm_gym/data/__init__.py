"""Reward-free datasets: collection, storage (Minari), loading and coverage."""

from bfm_gym.data.dataset import DatasetError, Transitions, load_transitions, read_manifest

__all__ = ["DatasetError", "Transitions", "collect", "load_transitions", "read_manifest"]


def collect(*args, **kwargs):
    """See :func:`bfm_gym.data.collection.collect` (imported lazily)."""
    from bfm_gym.data.collection import collect as _collect

    return _collect(*args, **kwargs)
