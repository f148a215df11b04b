"""The best-episode selection shared by ReLA and LoLA (``select="best_episode"``)."""

from __future__ import annotations

import numpy as np

from bfm_gym.adapters._common import BestEpisode


def test_best_is_the_highest_return_first_on_ties_and_survives_a_state_round_trip() -> None:
    keep = BestEpisode(3)
    default = np.array([1.0, 0.0, 0.0], np.float32)
    np.testing.assert_array_equal(keep.best(default), default)  # nothing played yet
    zs = [np.full(3, i, np.float32) for i in range(4)]
    for z, ret in zip(zs, [5.0, 9.0, 9.0, -1.0], strict=True):
        keep.add(z, ret)
    np.testing.assert_array_equal(keep.best(default), zs[1])  # the first of the two 9s
    best = keep.best(default)
    best[:] = 42.0  # a copy: the record is not changed through it
    np.testing.assert_array_equal(keep.played[1], zs[1])
    again = BestEpisode(3)
    again.load_state_dict(keep.state_dict())
    assert again.returns == keep.returns
    np.testing.assert_array_equal(np.stack(again.played), np.stack(keep.played))
    empty = BestEpisode(3)
    empty.load_state_dict(BestEpisode(3).state_dict())  # no episode yet: still loads
    assert empty.played == [] and empty.returns == []
    assert all(v.dtype != object for v in keep.state_dict().values())
