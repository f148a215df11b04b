"""`adapt` runs: records, outputs, resume after an interrupt, bad input, CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tiny_maze import without_wall_time

from bfm_gym.evaluation.zero_shot import InferenceSet
from bfm_gym.experiments import adapt
from bfm_gym.models import BFM


KW = dict(task="reach_top_left", max_episode_steps=40, progress=False)


@pytest.mark.parametrize("adapter", ["zero-shot", "opti"])
def test_adapt_writes_records_curve_and_summary(model_dir: Path, tmp_path: Path, adapter: str) -> None:
    res = adapt(str(model_dir), adapter=adapter, episodes=3, seed=1, out=tmp_path / "run",
                eval_every=2, oracle=1.0, **KW)
    assert [r["episode"] for r in res.records] == [0, 1, 2]
    assert res.records[-1]["env_steps"] == 120
    assert "eval_return" in res.records[1] and "eval_return" not in res.records[0]
    assert res.summary["zero_shot"] is not None and res.summary["episodes"] == 3
    for name in ("records.jsonl", "records.csv", "summary.json", "curve.png", "state.npz"):
        assert (tmp_path / "run" / name).is_file(), name
    labels = res.records[-1]["labels_used"]
    assert labels == (120 if adapter == "opti" else 0)


def test_zero_shot_level_episodes(model_dir: Path) -> None:
    from bfm_gym.adapters.zero_shot import ZeroShotAdapter
    from bfm_gym.experiments.adapt import _run_episode
    from bfm_gym.wrappers import LatentActionWrapper
    from gymnasium.wrappers import TimeLimit
    from bfm_gym.envs import make_env

    assert adapt(str(model_dir), adapter="opti", episodes=1, zero_shot_episodes=0, **KW).summary["zero_shot"] is None
    with pytest.raises(ValueError, match="zero_shot_episodes must be an integer >= 0"):
        adapt(str(model_dir), adapter="opti", episodes=1, zero_shot_episodes=-1, **KW)
    level = adapt(str(model_dir), adapter="opti", episodes=1, seed=2, zero_shot_episodes=3, **KW).summary["zero_shot"]
    bfm = BFM.load(model_dir)
    ref = ZeroShotAdapter(bfm, {"domain": "point_mass_maze", "task": "reach_top_left", "goal": None}, None,
                          seed=2, samples=InferenceSet.load(model_dir))
    env = LatentActionWrapper(TimeLimit(make_env("point_mass_maze", "reach_top_left"), 40), bfm,
                              z_hold=1, action_map="raw")  # z is fixed: any hold gives the same episode
    seeds = [int(np.random.SeedSequence([2, 0, 2, i]).generate_state(1)[0]) for i in range(3)]
    assert level == pytest.approx(np.mean([_run_episode(env, ref, s, learn=False)[0] for s in seeds]), abs=1e-3)


def test_zero_shot_from_online_labels_counts_them(model_dir: Path) -> None:
    res = adapt(str(model_dir), adapter="zero-shot", config={"online_labels": 50}, episodes=2,
                seed=0, **KW)
    assert [r["labels_used"] for r in res.records] == [40, 50]


def test_resume_equals_uninterrupted(model_dir: Path, tmp_path: Path) -> None:
    full = adapt(str(model_dir), adapter="opti", episodes=4, seed=3, out=tmp_path / "a", **KW)
    adapt(str(model_dir), adapter="opti", episodes=2, seed=3, out=tmp_path / "b", **KW)  # "killed" after 2
    resumed = adapt(str(model_dir), adapter="opti", episodes=4, seed=3, out=tmp_path / "b", **KW)
    assert without_wall_time(resumed.records) == without_wall_time(full.records)
    lines = (tmp_path / "b" / "records.jsonl").read_text().splitlines()
    assert len(lines) == 4  # nothing lost or duplicated


def test_adapt_bad_input(model_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="registered adapters: lola, opti, rela, zero-shot"):
        adapt(str(model_dir), adapter="nope", episodes=1, **KW)
    with pytest.raises(ValueError, match="Valid tasks"):
        adapt(str(model_dir), task="run", adapter="opti", episodes=1, progress=False)
    with pytest.raises(ValueError, match="did you mean 'beta'"):
        adapt(str(model_dir), adapter="opti", config={"betaa": 1}, episodes=1, **KW)
    adapt(str(model_dir), adapter="opti", episodes=1, out=tmp_path / "r", seed=0, **KW)
    with pytest.raises(ValueError, match="other arguments"):
        adapt(str(model_dir), adapter="opti", episodes=1, out=tmp_path / "r", seed=5, **KW)


def test_cli_adapt(model_dir: Path, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "bfm_gym.cli.main", "adapt", "--model", str(model_dir), "--task",
         "point_mass_maze-reach_top_left", "--adapter", "opti", "--episodes", "2", "--out",
         str(tmp_path / "cli"), "--set", "beta=0.2", "--max-episode-steps", "30", "--no-progress"],
        capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "zero_shot" in proc.stdout and "best" in proc.stdout
    assert json.loads((tmp_path / "cli" / "run.json").read_text())["config"]["beta"] == 0.2
    bad = subprocess.run([sys.executable, "-m", "bfm_gym.cli.main", "adapt", "--model", str(model_dir),
                          "--task", "reach_top_left", "--adapter", "nope", "--out", str(tmp_path / "x")],
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "registered adapters" in bad.stderr and "Traceback" not in bad.stderr


def test_opti_warm_start_uses_dataset_labels(model_dir: Path) -> None:
    cold = adapt(str(model_dir), adapter="opti", episodes=1, seed=0, **KW)
    warm = adapt(str(model_dir), adapter="opti", config={"warm_start": 300}, episodes=1, seed=0, **KW)
    assert warm.records[0]["labels_used"] == cold.records[0]["labels_used"] == 40  # online only
    with pytest.raises(ValueError, match="warm_start must be >= 0"):
        adapt(str(model_dir), adapter="opti", config={"warm_start": -1}, episodes=1, **KW)


def test_opti_warm_start_moves_estimate_toward_labels(model_dir: Path) -> None:
    from bfm_gym.adapters.opti import OptiAdapter

    bfm = BFM.load(model_dir)
    samples = InferenceSet.load(model_dir)
    spec = {"domain": "point_mass_maze", "task": "reach_top_left", "goal": None}
    cold = OptiAdapter(bfm, spec, {}, seed=0)
    warm = OptiAdapter(bfm, spec, {"warm_start": 600}, seed=0, samples=samples)
    assert np.allclose(cold.bandit.w_hat(), 0.0)
    assert np.linalg.norm(warm.bandit.w_hat()) > 0
    with pytest.raises(ValueError, match="needs dataset samples"):
        OptiAdapter(bfm, spec, {"warm_start": 5}, seed=0)
    goal = OptiAdapter(bfm, {"domain": "point_mass_maze", "task": None, "goal": [0.1, 0.1]},
                       {"warm_start": 1}, seed=0)
    assert np.linalg.norm(goal.bandit.w_hat()) > 0


def test_budget_steps_stops_adaptation(model_dir: Path) -> None:
    res = adapt(str(model_dir), adapter="opti", episodes=10, seed=0, budget_steps=100, **KW)
    assert [r["env_steps"] for r in res.records] == [40, 80, 120]
    with pytest.raises(ValueError, match="budget_steps"):
        adapt(str(model_dir), adapter="opti", episodes=1, budget_steps=0, **KW)


def test_resume_after_kill_between_records_and_state(model_dir: Path, tmp_path: Path) -> None:
    full = adapt(str(model_dir), adapter="opti", episodes=3, seed=4, out=tmp_path / "a", **KW)
    adapt(str(model_dir), adapter="opti", episodes=2, seed=4, out=tmp_path / "b", **KW)
    # simulate a kill after episode 2's records were written but before its state commit:
    # the state is that of episode 1, the records already hold episode 2
    import shutil

    adapt(str(model_dir), adapter="opti", episodes=1, seed=4, out=tmp_path / "c", **KW)
    shutil.copy(tmp_path / "c" / "state.npz", tmp_path / "b" / "state.npz")
    resumed = adapt(str(model_dir), adapter="opti", episodes=3, seed=4, out=tmp_path / "b", **KW)
    assert without_wall_time(resumed.records) == without_wall_time(full.records)


# -- paired evaluation and the policy video ------------------------------------------------


def test_paired_evaluation_uses_the_same_start_states_for_every_adapter(model_dir: Path) -> None:
    from bfm_gym.experiments.adapt import evaluation_seeds

    kw = dict(episodes=2, seed=3, eval_every=1, eval_episodes=3, zero_shot_episodes=3, **KW)
    zs = adapt(str(model_dir), adapter="zero-shot", **kw)
    opti = adapt(str(model_dir), adapter="opti", **kw)
    for res in (zs, opti):
        ev = res.summary["evaluation"]
        assert ev["reset_seeds"] == evaluation_seeds(3, 3) and ev["counted_in_budget"] is False
        assert [r["env_steps"] for r in res.records] == [40, 80]  # evaluation is not in the budget
        assert ev["env_steps"] == 3 * 3 * 40  # before the first episode and after each
        assert len(res.records[0]["initial_eval_returns"]) == 3 and "initial_eval_return" not in res.records[1]
        assert all(len(r["eval_returns"]) == 3 for r in res.records)
    starts = zs.summary["evaluation"]["initial_obs"]
    assert starts == opti.summary["evaluation"]["initial_obs"] and len({tuple(o) for o in starts}) == 3
    assert opti.records[-1]["labels_used"] == 80  # no label from the evaluation episodes
    # the zero-shot adapter's z never moves: each evaluation point repeats the zero-shot level's
    # returns start by start, which holds only if both played the same start states
    assert zs.summary["zero_shot_returns"] == zs.records[0]["eval_returns"] == zs.records[1]["eval_returns"]
    # ... and so does its evaluation before any env step
    assert zs.records[0]["initial_eval_returns"] == zs.summary["zero_shot_returns"]
    assert zs.summary["eval_initial"] == zs.summary["zero_shot"]
    assert zs.summary["eval_last_vs_zero_shot"]["mean_difference"] == 0.0
    other = adapt(str(model_dir), adapter="zero-shot", **{**kw, "seed": 4})
    assert other.summary["evaluation"]["initial_obs"] != zs.summary["evaluation"]["initial_obs"]


def test_evaluation_refuses_episodes_from_other_start_states(model_dir: Path) -> None:
    from gymnasium.wrappers import TimeLimit

    from bfm_gym.adapters.zero_shot import ZeroShotAdapter
    from bfm_gym.envs import make_env
    from bfm_gym.experiments.adapt import _evaluate, _start_recorder, evaluation_seeds
    from bfm_gym.wrappers import LatentActionWrapper

    bfm = BFM.load(model_dir)
    ref = ZeroShotAdapter(bfm, {"domain": "point_mass_maze", "task": "reach_top_left", "goal": None}, None,
                          seed=0, samples=InferenceSet.load(model_dir))
    env = _start_recorder(LatentActionWrapper(TimeLimit(make_env("point_mass_maze", "reach_top_left"), 10), bfm,
                                              z_hold=1, action_map="raw"))
    seeds = evaluation_seeds(0, 2)
    starts = [np.array(env.reset(seed=s)[0], dtype=np.float64) for s in seeds]
    returns, steps = _evaluate(env, ref, seeds, starts, "zero-shot")
    assert len(returns) == 2 and steps == 20
    with pytest.raises(ValueError, match="did not start from the fixed start states"):
        _evaluate(env, ref, evaluation_seeds(1, 2), starts, "zero-shot")


def test_eval_points_before_budgets() -> None:
    from bfm_gym.experiments.adapt import _eval_due

    # fixed cost 10: a point after the episode that ends exactly at a budget
    assert [k for k in range(6) if _eval_due(k, 6, 0, [20, 40], 10 * (k + 1), 10, False)] == [1, 3]
    assert _eval_due(0, 6, 0, [], 10, 10, last=True)
    assert [k for k in range(6) if _eval_due(k, 6, 3, [], 10 * (k + 1), 10, False)] == [2, 5]
    # a lookahead adapter (25 steps an episode): the point before crossing 60 comes after 50
    assert [k for k in range(4) if _eval_due(k, 4, 0, [60], 25 * (k + 1), 25, False)] == [1]


def test_eval_curve_and_summary_without_training_keys_mixed(model_dir: Path, tmp_path: Path) -> None:
    res = adapt(str(model_dir), adapter="opti", episodes=3, seed=0, out=tmp_path / "run", eval_every=2,
                eval_episodes=2, **KW)
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert s == json.loads(json.dumps(res.summary))
    assert s["eval_points"] == 2 and s["eval_last_episode"] == 3  # every 2 episodes and after the last
    assert {"train_first", "train_last", "eval_first", "eval_last", "eval_last_std"} <= set(s)
    assert (tmp_path / "run" / "curve.png").stat().st_size > 10_000
    csv_header = (tmp_path / "run" / "records.csv").read_text().splitlines()[0].split(",")
    assert "eval_return" in csv_header and "eval_std" in csv_header and "z" not in csv_header
    with pytest.raises(ValueError, match="eval_episodes must be an integer >= 0"):
        adapt(str(model_dir), adapter="opti", episodes=1, eval_every=1, eval_episodes=-1, **KW)


def test_video_every_writes_one_panel_per_point(model_dir: Path, tmp_path: Path) -> None:
    import math

    from PIL import Image

    from bfm_gym.envs.dmc_env import DMCEnv
    from bfm_gym.experiments.run_video import PLAYBACK_FPS, render_run
    from bfm_gym.evaluation.video import GIF_MAX_FPS

    res = adapt(str(model_dir), adapter="zero-shot", episodes=3, seed=0, out=tmp_path / "run", eval_every=0,
                video_every=2, video_steps=8, **KW)
    video = res.summary["video"]
    fps = DMCEnv("point_mass_maze", "reach_top_left").metadata["render_fps"]
    every = max(1, round(fps / PLAYBACK_FPS))
    assert video["render_every"] == every and video["frames"] == 8 // every + 1
    assert video["captions"] == ["zero-shot", "after 2 ep", "after 3 ep"]
    with Image.open(tmp_path / "run" / "policy.gif") as gif:
        assert gif.size == (3 * 160 + 2 * 3, 160 + 18)  # three panels side by side, captions on top
        assert gif.n_frames == math.ceil(video["frames"] / math.ceil(PLAYBACK_FPS / GIF_MAX_FPS))
    again = render_run(tmp_path / "run", tmp_path / "again.gif", every=3, steps=4)  # `bfm-gym video --run`
    assert again["captions"] == ["zero-shot", "after 3 ep"] and (tmp_path / "again.gif").is_file()
    assert again["returns"][1] == again["returns"][0]  # the zero-shot adapter's z never moves
    with pytest.raises(ValueError, match=r"video_every writes OUT/policy\.gif"):
        adapt(str(model_dir), adapter="zero-shot", episodes=1, video_every=1, **KW)


def test_an_adapter_that_cannot_act_before_its_first_episode_still_runs(
        model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The evaluation before the first env step is skipped, with a warning naming the error,
    for an adapter that builds itself in its first training episode (as SB3 ones may)."""
    from bfm_gym.adapters.zero_shot import ZeroShotAdapter

    original = ZeroShotAdapter.run_episode

    def lazy(self: ZeroShotAdapter, env: object, seed: int, learn: bool = True) -> tuple[float, int]:
        if not learn and not getattr(self, "_trained_once", False):
            raise RuntimeError("not built before the first episode")
        self._trained_once = True
        return original(self, env, seed, learn=learn)

    monkeypatch.setattr(ZeroShotAdapter, "run_episode", lazy)
    with pytest.warns(UserWarning, match="could not be evaluated before its first episode.*not built"):
        res = adapt(str(model_dir), adapter="zero-shot", episodes=2, seed=3, eval_every=1, eval_episodes=2,
                    zero_shot_episodes=2, **KW)
    assert "initial_eval_return" not in res.records[0] and all("eval_return" in r for r in res.records)
    assert "eval_initial" not in res.summary
