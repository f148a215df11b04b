"""Training: losses fall (FB, AR-FB, AWR), bf16 ~ fp32, exact resume, logging and evaluation."""

from __future__ import annotations

import os

from pathlib import Path

import numpy as np
import pytest
import torch

from bfm_gym.models.fb import BFM, CheckpointError, FBConfig, FBTrainer, OfflineReplay


def _trainer(config: FBConfig, seed: int = 0) -> FBTrainer:
    return FBTrainer(config, obs_dim=2, action_dim=2, device="cpu", seed=seed, threads=None)


# Numerics run both ways on any machine: fp32, and bf16 autocast (native on CPUs with
# AVX512-BF16/AMX, emulated elsewhere), whatever ``amp="auto"`` would pick here.
AMP = pytest.mark.parametrize("amp", ["off", "bf16"])


def _falls(history: list[dict[str, float]], key: str) -> bool:
    values = [row[key] for row in history]
    assert all(np.isfinite(values)), values
    return values[-1] < values[0] - 0.5


@AMP
def test_fb_loss_falls_on_point_transitions(
    tiny_config: FBConfig, point_replay: OfflineReplay, amp: str
) -> None:
    history = _trainer(tiny_config.replace(amp=amp)).train(point_replay, 300, log_every=50, progress=False)
    assert [row["step"] for row in history] == [50, 100, 150, 200, 250, 300]
    assert _falls(history, "fb_loss") and _falls(history, "ortho_loss")
    assert history[-1]["q"] > history[0]["q"]  # the TD3 actor climbs Q


@pytest.mark.parametrize(
    "changes",
    [
        {"ar_blocks": 2},
        {"ar_blocks": 3},
        {"actor_loss": "awr"},
        {"ar_blocks": 2, "actor_loss": "awr"},
    ],
    ids=str,
)
def test_fb_aware_variants_train(
    tiny_config: FBConfig, point_replay: OfflineReplay, changes: dict
) -> None:
    config = tiny_config.replace(**changes)
    trainer = _trainer(config)
    history = trainer.train(point_replay, 300, log_every=50, progress=False)
    assert _falls(history, "fb_loss")
    if config.actor_loss == "awr":
        assert history[-1]["actor_loss"] < history[0]["actor_loss"]
        assert all(1.0 <= row["awr_weight_max"] <= config.awr_weight_clip for row in history)
    bfm = trainer.snapshot(point_replay)
    z = bfm.infer_z(point_replay.next_obs[:500], point_replay.next_obs[:500, 0])
    assert torch.isfinite(z).all() and z.shape == (config.z_dim,)


def test_update_returns_unsynchronised_tensors(
    tiny_config: FBConfig, point_replay: OfflineReplay
) -> None:
    trainer = _trainer(tiny_config)
    metrics = trainer.update(trainer.sample(point_replay))
    assert {"fb_loss", "ortho_loss", "actor_loss", "q"} <= set(metrics)
    assert all(
        isinstance(v, torch.Tensor) and v.ndim == 0 and not v.requires_grad
        for v in metrics.values()
    )
    assert trainer.step == 1


def test_targets_follow_polyak_rule(tiny_config: FBConfig, point_replay: OfflineReplay) -> None:
    trainer = _trainer(tiny_config.replace(tau=0.25))
    before = trainer.agent.target_backward_map.state_dict()["net.0.weight"].clone()
    trainer.update(trainer.sample(point_replay))
    online = trainer.model.backward_map.state_dict()["net.0.weight"]
    torch.testing.assert_close(
        trainer.agent.target_backward_map.state_dict()["net.0.weight"],
        0.75 * before + 0.25 * online,
    )


def test_bf16_autocast_is_close_to_fp32(tiny_config: FBConfig, point_replay: OfflineReplay) -> None:
    runs = {
        amp: _trainer(tiny_config.replace(amp=amp)).train(
            point_replay, 60, log_every=20, progress=False
        )
        for amp in ("off", "bf16")
    }
    assert runs["bf16"][0]["fb_loss"] != runs["off"][0]["fb_loss"]  # bf16 really ran
    for fp32, bf16 in zip(runs["off"], runs["bf16"], strict=True):
        for key in ("fb_loss", "ortho_loss", "actor_loss"):
            assert abs(fp32[key] - bf16[key]) < 0.1 * (1 + abs(fp32[key])), (
                key,
                fp32[key],
                bf16[key],
            )


@AMP
def test_same_seed_same_weights(
    tiny_config: FBConfig, point_replay: OfflineReplay, amp: str
) -> None:
    tiny_config = tiny_config.replace(amp=amp)
    a, b = _trainer(tiny_config, seed=3), _trainer(tiny_config, seed=3)
    a.train(point_replay, 5, progress=False)
    b.train(point_replay, 5, progress=False)
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k
    c = _trainer(tiny_config, seed=4)
    assert not torch.equal(c.model.actor.mlp[0].weight, a.model.actor.mlp[0].weight)


@AMP
@pytest.mark.parametrize(
    "changes", [{}, {"ar_blocks": 2, "actor_loss": "awr"}], ids=["fb", "fb-aware"]
)
def test_resumed_training_is_bit_identical(
    tiny_config: FBConfig, point_replay: OfflineReplay, tmp_path: Path, changes: dict, amp: str
) -> None:
    config = tiny_config.replace(amp=amp, **changes)
    full = _trainer(config)
    full.train(point_replay, 20, tmp_path / "full", checkpoint_every=10, progress=False)

    interrupted = _trainer(config)
    interrupted.train(point_replay, 10, tmp_path / "resumed", checkpoint_every=10, progress=False)
    del interrupted  # the process "dies" after its step-10 checkpoint
    resumed = _trainer(config)  # a fresh process with the same command line
    resumed.train(point_replay, 20, tmp_path / "resumed", checkpoint_every=10, progress=False)
    assert resumed.step == 20

    def state(t: FBTrainer) -> dict[str, torch.Tensor]:
        out = {f"model.{k}": v for k, v in t.model.state_dict().items()}
        out.update(t.agent.target_state_dict())
        for name in ("fb_optimizer", "actor_optimizer"):
            for idx, entry in getattr(t.agent, name).state_dict()["state"].items():
                out.update({f"{name}.{idx}.{k}": v for k, v in entry.items()})
        return out

    expected, found = state(full), state(resumed)
    assert expected.keys() == found.keys()
    for k in expected:
        assert torch.equal(expected[k], found[k]), k
    # the final models written to <out>/model agree too
    a, b = BFM.load(tmp_path / "full" / "model"), BFM.load(tmp_path / "resumed" / "model")
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k
    assert a.metadata.training_steps == 20 and a.cov_finalized


def test_from_checkpoint_and_config_mismatch(
    tiny_config: FBConfig, point_replay: OfflineReplay, tmp_path: Path
) -> None:
    trainer = _trainer(tiny_config)
    trainer.train(point_replay, 4, tmp_path, checkpoint_every=2, keep_checkpoints=1, progress=False)
    checkpoints = sorted((tmp_path / "checkpoints").iterdir())
    assert [p.name for p in checkpoints] == ["step_000000004"]
    restored = FBTrainer.from_checkpoint(checkpoints[0], device="cpu", threads=None)
    assert restored.step == 4 and restored.config == tiny_config
    assert torch.equal(restored.model.actor.mlp[0].weight, trainer.model.actor.mlp[0].weight)
    BFM.load(checkpoints[0])  # a training checkpoint is also a model folder
    other = _trainer(tiny_config.replace(lr_f=5e-4))
    with pytest.raises(
        CheckpointError,
        match=r"trained with another config \(lr_f: checkpoint 0.001 vs trainer 0.0005\)",
    ):
        other.train(point_replay, 8, tmp_path, progress=False)


def test_keep_every_keeps_milestone_checkpoints(
    tiny_config: FBConfig, point_replay: OfflineReplay, tmp_path: Path
) -> None:
    """The newest ``keep_checkpoints`` plus every multiple of ``keep_every`` stay on disk."""
    trainer = _trainer(tiny_config)
    trainer.train(point_replay, 10, tmp_path, checkpoint_every=1, keep_checkpoints=2, keep_every=4,
                  progress=False)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["step_000000004", "step_000000008", "step_000000009", "step_000000010"]
    with pytest.raises(ValueError, match="keep_every >= 0"):
        trainer.train(point_replay, 12, tmp_path, keep_every=-1, progress=False)


def test_eval_fn_tensorboard_and_final_model(
    tiny_config: FBConfig, point_replay: OfflineReplay, tmp_path: Path
) -> None:
    calls: list[int] = []

    def eval_fn(bfm: BFM) -> dict[str, float]:
        calls.append(bfm.metadata.training_steps)
        assert bfm.cov_finalized and not any(p.requires_grad for p in bfm.model.parameters())
        z = bfm.infer_z(point_replay.next_obs, -point_replay.next_obs.norm(dim=-1))
        return {
            "reach_center/q": float(
                bfm.q(point_replay.obs[:64], bfm.act(point_replay.obs[:64], z), z).mean()
            )
        }

    trainer = FBTrainer(tiny_config, 2, 2, device="cpu", seed=0, threads=None,
                        metadata=None)  # fmt: skip
    history = trainer.train(
        point_replay, 6, tmp_path, log_every=3, eval_fn=eval_fn, eval_every=3, progress=True
    )
    assert calls == [3, 6]
    assert "eval/reach_center/q" in history[-1]
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    model = BFM.load(tmp_path / "model")
    assert model.metadata.dataset_hash == point_replay.fingerprint()
    assert model.metadata.training_steps == 6


def test_replay_validation() -> None:
    with pytest.raises(ValueError, match="action has 3 rows but obs has 4"):
        OfflineReplay(np.zeros((4, 2)), np.zeros((3, 2)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="next_obs has 3 features but obs has 2"):
        OfflineReplay(np.zeros((4, 2)), np.zeros((4, 2)), np.zeros((4, 3)))
    with pytest.raises(ValueError, match="obs holds NaN or inf"):
        OfflineReplay(np.full((4, 2), np.nan), np.zeros((4, 2)), np.zeros((4, 2)))


@AMP
def test_terminal_transitions_drop_the_bootstrap(tiny_config: FBConfig, amp: str) -> None:
    """With every transition terminal, the TD target is 0: M is pushed up on the diagonal only."""
    from bfm_gym.models.fb.agent import draw_noise
    from bfm_gym.models.fb.replay import TransitionBatch
    from bfm_gym.models.runtime import autocast_context

    config = tiny_config.replace(amp=amp)
    trainer = _trainer(config)
    agent = trainer.agent
    n = config.batch_size
    g = torch.Generator().manual_seed(0)
    batch = TransitionBatch(
        torch.rand(n, 2, generator=g),
        torch.rand(n, 2, generator=g),
        torch.rand(n, 2, generator=g),
        torch.ones(n, 1),
    )
    noise = draw_noise(config, 2, torch.Generator().manual_seed(1), torch.device("cpu"))
    z = agent.mixed_z(batch.next_obs, noise)
    discount = config.gamma * (1 - batch.terminated)
    _, f, metrics = agent._fb_losses_eager(
        batch.obs, batch.action, batch.next_obs, discount, z, noise.next_action
    )
    assert f.dtype == (torch.bfloat16 if amp == "bf16" else torch.float32)
    # M as the loss sees it: computed in the autocast dtype, then taken to fp32
    with torch.no_grad(), autocast_context(agent.device, agent.amp_dtype):
        m = (f @ trainer.model.backward(batch.next_obs).T).float()
    expected_diag = -torch.diagonal(m, dim1=1, dim2=2).mean(-1).sum()
    torch.testing.assert_close(metrics["fb_diag"], expected_diag)
    # the off-diagonal term sees M alone: nothing of the (non-zero) target reaches the loss
    assert float(metrics["target_m"].abs()) > 0
    offdiag = m.square().sum((-2, -1)) - torch.diagonal(m, dim1=1, dim2=2).square().sum(-1)
    torch.testing.assert_close(metrics["fb_offdiag"], 0.5 * offdiag.sum() / (n * n - n))


def test_training_leaves_the_global_rng_alone(
    tiny_config: FBConfig, point_replay: OfflineReplay, tmp_path: Path
) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    trainer = _trainer(tiny_config)
    trainer.train(
        point_replay,
        4,
        tmp_path,
        checkpoint_every=2,
        eval_fn=lambda bfm: {},
        eval_every=2,
        progress=False,
    )
    BFM.load(tmp_path / "model")
    torch.testing.assert_close(torch.rand(3), expected)


def _expensive(request: pytest.FixtureRequest) -> None:
    import os

    if not (
        request.config.getoption("--expensive", default=False)
        or os.environ.get("BFM_GYM_EXPENSIVE")
    ):
        pytest.skip(
            "torch.compile takes ~30-60 s on CPU: run with --expensive or BFM_GYM_EXPENSIVE=1"
        )


@pytest.mark.expensive
def test_compiled_update_matches_eager(
    tiny_config: FBConfig, point_replay: OfflineReplay, request: pytest.FixtureRequest
) -> None:
    _expensive(request)
    fp32 = tiny_config.replace(amp="off")  # bf16 rounding (amp auto on native-bf16 CPUs) is not compile's
    eager, compiled = _trainer(fp32), _trainer(fp32.replace(compile=True))
    for _ in range(3):
        batch = eager.sample(point_replay)
        compiled.sample(point_replay)
        m_eager, m_compiled = eager.update(batch), compiled.update(batch)
        for key in ("fb_loss", "ortho_loss", "actor_loss"):
            torch.testing.assert_close(m_compiled[key], m_eager[key], rtol=1e-3, atol=1e-4)


def test_amp_auto_follows_the_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """"auto" is bf16 exactly where the CPU has it natively; "off"/"bf16" ignore the CPU."""
    from bfm_gym.models import runtime

    cpu = torch.device("cpu")
    for native in (True, False):
        monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda native=native: native)
        assert runtime.resolve_amp("auto", cpu) == (torch.bfloat16 if native else None)
        assert runtime.resolve_amp("off", cpu) is None
        assert runtime.resolve_amp("bf16", cpu) == torch.bfloat16


@pytest.mark.parametrize("capability", ["avx2", "default"])
def test_amp_auto_is_fp32_where_torch_dispatches_below_avx512(capability: str) -> None:
    """With torch's kernels held to AVX2 (as on an AVX2-only CPU), "auto" picks fp32 even on a
    CPU that has bf16: what ``make test-avx2`` relies on."""
    import subprocess
    import sys

    code = ("import torch; from bfm_gym.models.runtime import resolve_amp; "
            "print(torch.backends.cpu.get_cpu_capability(), resolve_amp('auto', torch.device('cpu')))")
    env = {**os.environ, "ATEN_CPU_CAPABILITY": capability}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [capability.upper() if capability == "avx2" else "DEFAULT", "None"]
