"""Collection -> pre-training -> wrap -> adaptation on a Gymnasium MuJoCo env (Hopper-v5, whose
episodes terminate when it falls), and pre-training from Minari datasets made by anyone."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from bfm_gym.data import load_transitions, read_manifest
from bfm_gym.data.dataset import DatasetError

HOPPER = "Hopper-v5"


def test_collection_records_rewards_terminations_and_states(hopper_data: Path) -> None:
    import minari

    m = read_manifest(hopper_data)
    assert m["domain"] == HOPPER and m["env"]["id"] == HOPPER and m["env"]["has_state"]
    assert m["steps"] >= 600 and m["terminations"] >= 1 and m["state_size"] > 0
    assert m["command"].startswith(f"bfm-gym collect --env {HOPPER} ")
    assert set(m["coverage"]["tasks"]) >= {"native", "height", "forward"}
    t = load_transitions(hopper_data)
    ends = [*np.flatnonzero(np.diff(t.episode)).tolist(), len(t) - 1]
    assert t.terminated.sum() == m["terminations"] and set(np.flatnonzero(t.terminated)) <= set(ends)
    ds = minari.MinariDataset(hopper_data / m["dataset_id"] / "data")
    ep = next(iter(ds.iterate_episodes()))
    assert ep.terminations[-1] != ep.truncations[-1] and ep.infos["state"].shape[1] == m["state_size"]
    np.testing.assert_array_equal(ep.rewards, t.reward[: len(ep.rewards)])
    assert ds.spec.env_spec.id == HOPPER


def test_stored_states_relabel_exactly_like_online(hopper_data: Path) -> None:
    from bfm_gym.data.collection import episode_seed
    from bfm_gym.envs.gym_env import make_gym_env
    from bfm_gym.envs.gym_tasks import label_rewards

    t = load_transitions(hopper_data)
    labels = label_rewards(HOPPER, ["native", "height", "forward"], t, t.env)
    first = t.episode == 0
    for task in ("native", "height", "forward"):  # replay episode 0's actions online
        env = make_gym_env(HOPPER, None if task == "native" else task)
        env.reset(seed=episode_seed(0, 0))
        online = [env.step(a)[1] for a in t.action[first]]
        np.testing.assert_array_equal(online, labels[task][first])
        env.close()


def test_model_records_its_env_and_wraps_gym_make(hopper_model: Path) -> None:
    import bfm_gym

    bfm = bfm_gym.load(hopper_model)
    env_info = bfm.metadata.extra["env"]
    assert bfm.metadata.domain == HOPPER and env_info["id"] == HOPPER and env_info["kwargs"] == {}
    assert env_info["observation_space"].startswith("Box(-inf, inf, (11,)")
    env = bfm_gym.wrap(gym.make(HOPPER), model=hopper_model)
    assert env.supports_state_reset
    env.reset(seed=0)
    state = env.get_state()
    z = env.z_to_action(np.ones(env.z_dim, np.float32))
    first = [env.step(z)[0] for _ in range(5)]
    env.reset(options={"state": state})
    np.testing.assert_array_equal(first, [env.step(z)[0] for _ in range(5)])
    rebuilt = gym.make(env.spec)  # the spec records the raw id and the wrapper
    assert rebuilt.supports_state_reset and rebuilt.model.metadata.domain == HOPPER
    with pytest.raises(ValueError, match=r"observation space Box\(.*\(17,\).*expects Box\(.*\(11,\)"):
        bfm_gym.wrap(gym.make("Walker2d-v5"), model=hopper_model)


@pytest.mark.parametrize("adapter", ["zero-shot", "opti", "rela", "lola"])
def test_every_builtin_adapter_runs_with_early_terminations(hopper_model: Path, adapter: str) -> None:
    from bfm_gym.envs.gym_env import make_task_env
    from bfm_gym.experiments import adapt

    task = "height"  # a simulator task, relabelled from the shipped samples' states
    res = adapt(str(hopper_model), task, adapter, episodes=1, max_episode_steps=300, seed=0,
                progress=False, zero_shot_episodes=1, config={"update_every": 5} if adapter == "lola" else None)
    steps = res.records[0]["env_steps"] - res.records[0]["sim_steps"]
    assert 0 < steps < 300, "the tiny model's hopper falls: the episode terminates early"
    # the budget counts exactly the steps the episode lasted: replay zero-shot's episode
    if adapter == "zero-shot":
        import bfm_gym
        from bfm_gym.experiments.adapt import episode_seed
        from bfm_gym.wrappers import LatentActionWrapper

        env = LatentActionWrapper(make_task_env(HOPPER, task), bfm_gym.load(hopper_model),
                                  action_map="raw")
        env.reset(seed=episode_seed(0, 0))
        z = np.asarray(res.records[0]["z"], np.float32)
        n, term, trunc = 0, False, False
        while not (term or trunc):
            _, _, term, trunc, info = env.step(z)
            n += info["hold_steps"]
        assert n == steps and term
    if adapter == "lola":
        assert res.records[0]["sim_steps"] > 0


def test_terminal_transitions_cut_the_bootstrap(hopper_data: Path) -> None:
    """On terminal transitions an FB update does not depend on gamma (same seeds), while on
    non-terminal ones it does: nothing is bootstrapped through a terminal state."""
    import torch

    from bfm_gym.models import FBConfig, FBTrainer, OfflineReplay
    from bfm_gym.models.fb.agent import draw_noise

    t = load_transitions(hopper_data)
    term = t.terminated.astype(bool)
    obs, act, nxt = t.obs[term][:4], t.action[term][:4], t.next_obs[term][:4]
    idx = np.resize(np.arange(len(obs)), 64)

    def step(gamma: float, terminated: float) -> dict[str, float]:
        cfg = FBConfig.preset("walker", "tiny", gamma=gamma)
        trainer = FBTrainer(cfg, obs.shape[1], act.shape[1], device="cpu", seed=0, threads=1)
        replay = OfflineReplay(obs[idx], act[idx], nxt[idx], np.full(64, terminated))
        batch = replay.sample(cfg.batch_size, torch.Generator().manual_seed(0))
        noise = draw_noise(cfg, act.shape[1], torch.Generator().manual_seed(1), torch.device("cpu"))
        return {k: float(v) for k, v in trainer.agent.update(batch, noise).items()}

    # on terminal transitions gamma has no effect (no bootstrap); on others it does
    assert step(0.98, 1.0) == step(0.5, 1.0)
    assert step(0.98, 0.0)["fb_loss"] != pytest.approx(step(0.5, 0.0)["fb_loss"], rel=1e-3)
    # and pre-training feeds the dataset's terminations to the replay
    from bfm_gym.models.registry import trainer_for

    replay = trainer_for("fb").replay_from(t)
    assert float(replay.terminated.sum()) == t.terminated.sum() > 0


def _minari_dataset(root: Path, name: str, env_id: str = "InvertedPendulum-v5",
                    claim: str | None = None) -> None:
    """A Minari dataset made with Minari's own API from plain Gymnasium episodes (no bfm_gym
    involved). Minari's DataCollector needs jax (``minari[create]``), which bfm_gym does not
    depend on, so the episodes go through ``create_dataset_from_buffers`` as DataCollector
    would send them. ``claim``: record another env id than the one that made the data."""
    from minari import create_dataset_from_buffers
    from minari.data_collector import EpisodeBuffer

    env = gym.make(env_id, max_episode_steps=30)
    env.action_space.seed(0)
    buffers = []
    for k in range(8):
        obs, _ = env.reset(seed=k)
        o, a, r, te, tr = [obs], [], [], [], []
        done = False
        while not done:
            action = env.action_space.sample()
            obs, reward, term, trunc, _ = env.step(action)
            o.append(obs), a.append(action), r.append(reward), te.append(term), tr.append(trunc)
            done = term or trunc
        buffers.append(EpisodeBuffer(id=k, seed=k, observations=np.array(o), actions=np.array(a),
                                     rewards=np.array(r), terminations=np.array(te),
                                     truncations=np.array(tr), infos={}))
    spec = gym.spec(claim) if claim else env.spec
    create_dataset_from_buffers(name, buffers, env=spec, eval_env=spec, author="tests",
                                author_email="tests@example.org", description="random actions",
                                observation_space=env.observation_space,
                                action_space=env.action_space, algorithm_name="random")
    env.close()


def test_a_locally_made_minari_dataset_pretrains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bfm_gym
    from bfm_gym.pretraining import pretrain

    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    _minari_dataset(root, "test/pendulum/random-v0")
    kw = dict(config="tiny", updates=10, eval_every=10, eval_episodes=1, checkpoint_every=10,
              log_every=5, inference_samples=200, threads=1, progress=False)
    model = pretrain("test/pendulum/random-v0", tmp_path / "by-name", **kw)  # a local name
    history = json.loads((model / "training" / "history.json").read_text())
    assert any("eval/zero_shot/native" in row for row in history)  # its rewards label 'native'
    bfm = bfm_gym.load(model)
    assert bfm.metadata.extra["env"]["id"] == "InvertedPendulum-v5"
    assert bfm.metadata.action_low == [-3.0] and bfm.metadata.action_high == [3.0]
    from bfm_gym.models.inference import InferenceSet, reward_z

    samples = InferenceSet.load(model)
    assert samples.next_state.shape[1] == 0 and np.all(samples.action <= 1) and np.all(samples.action >= -1)
    assert reward_z(bfm, samples, "native").shape == (bfm.z_dim,)
    env = bfm_gym.wrap(gym.make("InvertedPendulum-v5"), model=model)
    env.reset(seed=0)
    assert env.step(env.z_to_action(np.ones(bfm.z_dim)))[0].shape == (4,)
    # the folder works as well as the name; a missing name says how to get it
    pretrain(root / "test" / "pendulum" / "random-v0", tmp_path / "by-folder", **kw)
    with pytest.raises(DatasetError, match=r"minari download mujoco/hopper/medium-v0"):
        pretrain("mujoco/hopper/medium-v0", tmp_path / "missing", **kw)


def test_dataset_that_does_not_fit_its_env_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      hopper_data: Path) -> None:
    from bfm_gym.pretraining import pretrain

    root = tmp_path / "minari"
    monkeypatch.setenv("MINARI_DATASETS_PATH", str(root))
    _minari_dataset(root, "test/liar/random-v0", claim=HOPPER)
    kw = dict(config="tiny", updates=5, eval_every=0, threads=1, progress=False)
    with pytest.raises(DatasetError, match=r"does not match its env 'Hopper-v5'.*size 4.*Box\(-inf, inf, \(11,\)"):
        pretrain("test/liar/random-v0", tmp_path / "m", **kw)
    assert not (tmp_path / "m" / "training" / "checkpoints").exists()
    with pytest.raises(ValueError, match=r"different envs"):
        pretrain([hopper_data, root / "test" / "liar" / "random-v0"], tmp_path / "mix", **kw)


def test_env_without_state_access_works_for_the_rest(tmp_path: Path) -> None:
    """Pendulum-v1 (not MuJoCo): collection, pre-training, wrapping and adaptation work; what
    needs simulator states says so."""
    import bfm_gym
    from bfm_gym.data.collection import collect
    from bfm_gym.experiments import adapt
    from bfm_gym.pretraining import pretrain

    data = collect("Pendulum-v1", tmp_path / "d", agent="ou", steps=300, max_episode_steps=100,
                   progress=False, coverage=False)
    assert read_manifest(data)["state_size"] == 0 and not read_manifest(data)["env"]["has_state"]
    model = pretrain(data, tmp_path / "m", config="tiny", updates=10, eval_every=10, eval_episodes=1,
                     checkpoint_every=10, inference_samples=200, threads=1, progress=False)
    env = bfm_gym.wrap(gym.make("Pendulum-v1"), model=model)
    assert not env.supports_state_reset
    env.reset(seed=0)
    with pytest.raises(ValueError, match="supports state reset"):
        env.reset(options={"state": np.zeros(3)})
    res = adapt(str(model), "native", "opti", episodes=1, max_episode_steps=20, progress=False,
                zero_shot_episodes=0)
    assert res.records[0]["env_steps"] == 20
    with pytest.raises(ValueError, match=r"needs resets to simulator states; Pendulum-v1 offers none"):
        adapt(str(model), "native", "lola", episodes=1, max_episode_steps=20, progress=False)


def test_cli_collect_and_tasks_for_a_gym_env(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from bfm_gym.cli.main import cli

    runner = CliRunner()
    res = runner.invoke(cli, ["collect", "--env", "InvertedPendulum-v5", "--agent", "random",
                              "--steps", "60", "--max-episode-steps", "30", "--out",
                              str(tmp_path / "ip"), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert "InvertedPendulum-v5" in res.output and "native" in res.output
    res = runner.invoke(cli, ["collect", "--env", "CartPole-v1", "--steps", "10", "--out",
                              str(tmp_path / "cp")])
    assert res.exit_code != 0 and "Discrete action space" in res.output and "Traceback" not in res.output
    res = runner.invoke(cli, ["collect", "--env", "Hopper-v5", "--env-kwargs", "{bad", "--steps", "10",
                              "--out", str(tmp_path / "h")])
    assert res.exit_code != 0 and "--env-kwargs" in res.output
    res = runner.invoke(cli, ["tasks", "--env", "Hopper-v5"])
    assert res.exit_code == 0 and "native" in res.output


def test_dict_observation_env_end_to_end(tmp_path: Path) -> None:
    """A non-MuJoCo env with Dict observations: flattened in the recorded (sorted) key order by
    collection, and in the same order when the model wraps ``gym.make`` of it."""
    import bfm_gym
    from bfm_gym.data.collection import collect
    from bfm_gym.experiments import adapt
    from bfm_gym.pretraining import pretrain

    env_id = "byoe/DictPoint-v0"
    if env_id not in gym.registry:
        gym.register(env_id, entry_point="byoe_tasks:DictPointEnv", max_episode_steps=50)
    data = collect(env_id, tmp_path / "d", agent="random", steps=200, progress=False,
                   env_kwargs={"max_speed": 0.5})
    m = read_manifest(data)
    assert m["env"]["obs_keys"] == ["position", "velocity"] and m["env"]["kwargs"] == {"max_speed": 0.5}
    t = load_transitions(data)
    np.testing.assert_allclose(t.reward, -np.linalg.norm(t.next_obs[:, :2], axis=1), rtol=1e-5)
    model = pretrain(data, tmp_path / "m", config="tiny", updates=10, eval_every=0, threads=1,
                     inference_samples=100, progress=False)
    env = bfm_gym.wrap(gym.make(env_id, max_speed=0.5), model=model)
    assert env.observation_space.shape == (4,)
    obs, _ = env.reset(seed=0)
    raw = gym.make(env_id, max_speed=0.5).reset(seed=0)[0]
    np.testing.assert_array_equal(obs, np.concatenate([raw["position"], raw["velocity"]]).astype(np.float32))
    res = adapt(str(model), "native", "opti", episodes=1, progress=False, zero_shot_episodes=0)
    assert res.records[0]["env_steps"] == 50


def test_eval_and_compare_take_gym_tasks(hopper_model: Path, tmp_path: Path) -> None:
    from bfm_gym.cli.eval import run_eval
    from bfm_gym.experiments.compare import compare

    result = run_eval(str(hopper_model), task="height", episodes=2)  # a task registered in Python
    assert result.task == "height" and len(result.returns) == 2
    res = compare(str(hopper_model), "native", "zero-shot,opti", out=tmp_path / "cmp", seeds=1,
                  episodes=2, workers=1, max_episode_steps=40, eval_episodes=1, bootstrap_reps=50,
                  progress=False)
    assert (tmp_path / "cmp" / "report.md").is_file() and res is not None


def test_video_of_a_gym_env_model(hopper_model: Path, tmp_path: Path) -> None:
    """``bfm-gym video`` renders a model of a Gymnasium env (its recorded id, at the asked size),
    with a task of that id: the env's own reward through the CLI, a registered task in Python."""
    import subprocess
    import sys

    from bfm_gym.evaluation.video import render_rollout

    import bfm_gym

    z = np.ones(bfm_gym.load(hopper_model).z_dim, np.float32)
    frames, total, fps = render_rollout(hopper_model, "height", z, steps=4, width=64, height=48)
    assert len(frames) == 5 and frames[0].shape == (48, 64, 3) and frames[0].dtype == np.uint8
    assert np.isfinite(total) and fps > 0 and any(f.any() for f in frames)
    out = tmp_path / "hopper.gif"
    proc = subprocess.run([sys.executable, "-m", "bfm_gym.cli.main", "video", "--model", str(hopper_model),
                           "--task", "native", "--z-from-task", "--steps", "3", "--width", "64",
                           "--height", "48", "--out", str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_size > 100 and "4 frames" in proc.stdout
