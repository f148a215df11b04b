"""Weight averaging: the moving average kept while training (``ema_tau``) and checkpoint means."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bfm_gym.models.averaging import WeightEMA, average_state_dicts
from bfm_gym.models.fb import BFM, FBConfig, FBTrainer, OfflineReplay


def _trainer(config: FBConfig) -> FBTrainer:
    return FBTrainer(config, obs_dim=2, action_dim=2, device="cpu", seed=0, threads=None)


def _params(t: FBTrainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in t.model.named_parameters()}


def test_ema_is_the_mean_of_the_first_updates_then_an_ema(
    tiny_config: FBConfig, point_replay: OfflineReplay
) -> None:
    trainer = _trainer(tiny_config.replace(ema_tau=0.25))
    seen = [_params(trainer)]  # the initial weights count as the first
    for step in range(1, 7):
        trainer.train(point_replay, step, progress=False)
        seen.append(_params(trainer))
    ema = trainer.ema
    assert ema is not None and ema.count == 7
    expected = {k: torch.stack([s[k].double() for s in seen[:4]]).mean(0) for k in seen[0]}
    for s in seen[4:]:  # rate max(0.25, 1/n): the plain mean up to n = 4, then 0.25
        expected = {k: v + 0.25 * (s[k].double() - v) for k, v in expected.items()}
    averaged = dict(zip((n for n, _ in trainer.model.named_parameters()), ema.averaged, strict=True))
    for k, v in expected.items():
        assert torch.allclose(averaged[k].double(), v, atol=1e-6, rtol=0), k
    assert not torch.equal(averaged["actor.mlp.0.weight"], seen[-1]["actor.mlp.0.weight"])


def test_ema_leaves_training_unchanged_and_resumes_exactly(
    tiny_config: FBConfig, point_replay: OfflineReplay, tmp_path: Path
) -> None:
    plain = _trainer(tiny_config)
    plain.train(point_replay, 20, progress=False)
    config = tiny_config.replace(ema_tau=0.05)
    full = _trainer(config)
    full.train(point_replay, 20, tmp_path / "full", checkpoint_every=10, progress=False)
    for k, v in _params(plain).items():  # the average is a side copy
        assert torch.equal(v, _params(full)[k]), k

    first = _trainer(config)
    first.train(point_replay, 10, tmp_path / "resumed", checkpoint_every=10, progress=False)
    del first
    resumed = _trainer(config)
    resumed.train(point_replay, 20, tmp_path / "resumed", checkpoint_every=10, progress=False)
    assert full.ema is not None and resumed.ema is not None and resumed.ema.count == 21
    for a, b in zip(full.ema.averaged, resumed.ema.averaged, strict=True):
        assert torch.equal(a, b)
    # the run's final model holds the averaged weights and says so
    model = BFM.load(tmp_path / "full" / "model")
    assert model.metadata.extra["weight_ema"] == {"tau": 0.05, "updates": 21}
    saved = model.model.state_dict()
    for name, t in zip((n for n, _ in full.model.named_parameters()), full.ema.averaged, strict=True):
        assert torch.equal(saved[name], t), name
    online = full.snapshot(weights="online").model.state_dict()
    assert torch.equal(online["actor.mlp.0.weight"], full.model.actor.mlp[0].weight)
    assert "weight_ema" not in full.snapshot(weights="online").metadata.extra


def test_ema_needs_a_run_that_keeps_one(tiny_config: FBConfig, point_replay: OfflineReplay) -> None:
    trainer = _trainer(tiny_config)
    trainer.train(point_replay, 2, progress=False)
    assert trainer.ema is None
    with pytest.raises(ValueError, match=r"keeps no moving average.*ema_tau > 0"):
        trainer.snapshot(weights="ema")
    with pytest.raises(ValueError, match=r"tau must be in \(0, 1\]"):
        WeightEMA(trainer.model, 0.0)
    with pytest.raises(ValueError, match="ema_tau"):
        tiny_config.replace(ema_tau=2.0)


def test_average_state_dicts_means_floats_and_rejects_other_shapes() -> None:
    a = {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)}
    b = {"w": torch.tensor([3.0, 6.0]), "n": torch.tensor(5)}
    out = average_state_dicts([a, b])
    assert torch.equal(out["w"], torch.tensor([2.0, 4.0])) and int(out["n"]) == 5
    with pytest.raises(ValueError, match="other tensors than the last"):
        average_state_dicts([a, {"w": torch.zeros(3), "n": torch.tensor(1)}])
    with pytest.raises(ValueError, match="no states"):
        average_state_dicts([])


def test_hilp_keeps_a_moving_average_too() -> None:
    from hilp_testdata import point_walks

    from bfm_gym.models.hilp import GoalReplay, HILPConfig, HILPTrainer

    config = HILPConfig.preset("point_mass_maze", "tiny", ema_tau=0.1)
    trainer = HILPTrainer(config, 2, 2, device="cpu", seed=0, threads=None)
    trainer.train(GoalReplay(**point_walks()), 12, progress=False)
    snap = trainer.snapshot()
    assert snap.metadata.extra["weight_ema"] == {"tau": 0.1, "updates": 13}
    name = next(n for n, _ in trainer.model.named_parameters())
    assert not torch.equal(snap.model.state_dict()[name], trainer.model.state_dict()[name])
