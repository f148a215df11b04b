"""Dataset -> pretrain -> model folder -> load -> zero-shot eval, on real (tiny) data."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import bfm_gym
from bfm_gym.data.collection import collect
from bfm_gym.evaluation import InferenceSet, evaluate_zero_shot
from bfm_gym.pretraining import make_config, pretrain


@pytest.fixture(scope="module")
def maze_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data") / "maze"
    collect("point_mass_maze", out, agent="ou", episodes=3, seed=0, progress=False, coverage=False)
    return out


def test_pretrain_writes_loadable_model_and_resumes(maze_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    pretrain(maze_data, out, config="tiny", updates=60, eval_every=30, eval_episodes=1,
             checkpoint_every=30, log_every=10, inference_samples=500, progress=False, threads=1)
    bfm = bfm_gym.load(out)
    assert bfm.metadata.domain == "point_mass_maze" and bfm.metadata.training_steps == 60
    history = json.loads((out / "training" / "history.json").read_text())
    assert any("eval/zero_shot/mean" in row for row in history)
    assert (out / "training" / "tb").is_dir()
    samples = InferenceSet.load(out)
    assert samples.next_obs.shape == (500, 4) and samples.domain == "point_mass_maze"
    # Continuing the same run to more updates resumes from the checkpoint.
    pretrain(maze_data, out, config="tiny", updates=90, eval_every=0, checkpoint_every=30,
             inference_samples=500, progress=False, threads=1)
    assert bfm_gym.load(out).metadata.training_steps == 90
    # Another config into the same folder is refused.
    with pytest.raises(ValueError, match="another dataset, config or seed"):
        pretrain(maze_data, out, config="tiny", overrides={"gamma": 0.9}, updates=10,
                 progress=False)


def test_a_run_begun_under_an_earlier_preset_resumes_with_its_recorded_config(
        maze_data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rerunning the same command resumes even after the preset's defaults changed (here
    ema_tau), with the config the run recorded; a field the command sets itself is a new run."""
    import dataclasses

    import bfm_gym.pretraining as pretraining

    out = tmp_path / "model"
    kwargs = dict(config="tiny", eval_every=0, checkpoint_every=20, inference_samples=300,
                  progress=False, threads=1)
    pretrain(maze_data, out, updates=20, **kwargs)
    recorded = json.loads((out / "training" / "run.json").read_text())["spec"]["config"]
    assert recorded["ema_tau"] == 0.0
    real = pretraining.make_config

    def newer_preset(*args, **kw):  # type: ignore[no-untyped-def]
        cfg = real(*args, **kw)
        return cfg if "ema_tau" in (kw.get("overrides") or (args[2] if len(args) > 2 else None) or {}) \
            else dataclasses.replace(cfg, ema_tau=1e-3)

    monkeypatch.setattr(pretraining, "make_config", newer_preset)
    with pytest.warns(UserWarning, match=r"earlier 'tiny' preset \(ema_tau: 0.001 -> 0.0"):
        pretrain(maze_data, out, updates=40, **kwargs)
    assert bfm_gym.load(out).metadata.training_steps == 40
    assert json.loads((out / "training" / "run.json").read_text())["spec"]["config"] == recorded
    # the same field set on the command line is another run, and so is a preset-drift plus a seed change
    with pytest.raises(ValueError, match="another dataset, config or seed"):
        pretrain(maze_data, out, updates=60, overrides={"ema_tau": 1e-3}, **kwargs)
    with pytest.raises(ValueError, match="another dataset, config or seed"):
        pretrain(maze_data, out, updates=60, seed=1, **kwargs)


def test_zero_shot_eval_for_task_goal_and_user_reward(maze_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "m"
    pretrain(maze_data, out, config="tiny", updates=20, eval_every=0, checkpoint_every=0,
             inference_samples=2000, progress=False, threads=1)
    bfm = bfm_gym.load(out)
    samples = InferenceSet.load(out)

    def right_half(physics) -> float:
        return float(physics.data.qpos[0] > 0.0)

    from bfm_gym.envs.tasks import Task

    custom = Task("point_mass_maze", "right_half", right_half)
    visited = tuple(round(float(v), 3) for v in samples.next_obs[100, :2])  # a goal the data reached
    res = evaluate_zero_shot(bfm, "point_mass_maze", [custom], samples, episodes=2, seed=0,
                             goals=[visited])
    assert set(res) == {"right_half", f"reach@{visited[0]:g},{visited[1]:g}"}
    for r in res.values():
        assert len(r.returns) == 2 and r.ci95[0] <= r.mean <= r.ci95[1]
        assert len(r.extra["z"]) == bfm.z_dim

    def never(physics) -> float:
        return 0.0

    with pytest.raises(ValueError, match="reward 0"):
        evaluate_zero_shot(bfm, "point_mass_maze", [Task("point_mass_maze", "never", never)],
                           samples, episodes=1)


def test_config_errors() -> None:
    with pytest.raises(ValueError, match="neither a preset"):
        make_config("walker", "huge")
    with pytest.raises(ValueError):
        make_config("walker", "cpu", {"z_dimm": 3})


def test_cli_pretrain_and_eval(maze_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli-model"

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "bfm_gym.cli.main", *args],
                              capture_output=True, text=True, timeout=600)

    proc = run("pretrain", "--dataset", str(maze_data), "--config", "tiny", "--out", str(out),
               "--updates", "20", "--eval-every", "0", "--inference-samples", "1000",
               "--threads", "1", "--checkpoint-every", "5", "--keep-every", "10", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    kept = sorted(p.name for p in (out / "training" / "checkpoints").iterdir())
    assert kept == ["step_000000010", "step_000000015", "step_000000020"]
    x, y = InferenceSet.load(out).next_obs[7, :2]
    proc = run("eval", "--model", str(out), "--goal", f"{x:.3f},{y:.3f}",
               "--episodes", "2", "--json", str(tmp_path / "r.json"))
    assert proc.returncode == 0, proc.stderr
    assert "95% CI" in proc.stdout
    assert json.loads((tmp_path / "r.json").read_text())["task"].startswith("reach@")
    (tmp_path / "notes.md").write_text("## How this run went\nchosen at step 20\n")
    proc = run("card", str(out), "--episodes", "1", "--command", "bfm-gym pretrain ...",
               "--notes", str(tmp_path / "notes.md"), "--gradient-check", "--gradient-seeds", "2")
    assert proc.returncode == 0, proc.stderr
    card = (out / "MODEL_CARD.md").read_text()
    assert "bfm-gym pretrain ..." in card and "| reach_top_left |" in card
    assert card.rstrip().endswith("chosen at step 20")
    report = json.loads((out / "zero_shot.json").read_text())
    # the gradient check's table, one row per task with a zero-shot latent, in the card and JSON
    checked = report["gradient_check"]
    assert checked and set(checked) <= set(report["tasks"])
    assert "## Does F's value gradient lead to better policies?" in card
    for task, row in checked.items():
        assert row["seeds"] == [2000, 2001] and f"| {task} | " in card.split("## Does F's")[1]
        assert f"{task:<22}F's gradient: {row['verdict']}" in proc.stdout
    assert report["floor"] == 600.0 and set(report["tasks"]) >= {"reach_top_left"}
    from bfm_gym.utils.machine import cpu_kind

    assert report["machine"]["cpu_kind"] == cpu_kind() and report["machine"]["mujoco"]
    assert f"({cpu_kind()}; torch " in card  # the card says which CPU measured its returns
    bad = run("eval", "--model", str(out), "--task", "run")
    assert bad.returncode != 0 and "Valid tasks" in bad.stderr and "Traceback" not in bad.stderr
    bad = run("pretrain", "--dataset", str(tmp_path), "--out", str(tmp_path / "x"))
    assert bad.returncode != 0 and "not a bfm_gym dataset" in bad.stderr


def test_load_unknown_model_lists_shipped_names(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="Shipped models"):
        bfm_gym.load("no-such-model")
    with pytest.raises(ValueError, match="not a shipped model"):
        bfm_gym.load(tmp_path)


def test_inference_samples_missing_or_corrupt(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no inference samples"):
        InferenceSet.load(tmp_path)
    (tmp_path / "inference_samples.safetensors").write_bytes(b"\x00garbage")
    with pytest.raises(ValueError, match="corrupt"):
        InferenceSet.load(tmp_path)


def test_summarize_interval_brackets_mean() -> None:
    from bfm_gym.evaluation import summarize

    res = summarize("t", np.array([100.0, 200.0, 300.0, 400.0]), seed=3)
    assert res.mean == 250.0 and res.ci95[0] < 250.0 < res.ci95[1]
    assert summarize("t", np.array([5.0]), seed=0).ci95 == (5.0, 5.0)


def test_pretrain_mixes_datasets_of_one_domain(maze_data: Path, tmp_path: Path) -> None:
    other = tmp_path / "random"
    collect("point_mass_maze", other, agent="random", episodes=1, seed=1, progress=False,
            coverage=False)
    out = pretrain([maze_data, other], tmp_path / "mix", config="tiny", updates=5, eval_every=0,
                   checkpoint_every=0, inference_samples=100, progress=False, threads=1)
    bfm = bfm_gym.load(out)
    assert " + " in bfm.metadata.dataset_id
    walker = tmp_path / "walker"
    collect("walker", walker, agent="random", episodes=1, progress=False, coverage=False)
    with pytest.raises(ValueError, match="one domain"):
        pretrain([maze_data, walker], tmp_path / "bad", config="tiny", updates=1, progress=False)


def test_export_checkpoint_equals_the_model_pretrain_writes(maze_data: Path, tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    from bfm_gym.pretraining import export_checkpoint

    out = tmp_path / "model"
    pretrain(maze_data, out, config="tiny", updates=40, eval_every=0, checkpoint_every=20,
             inference_samples=300, progress=False, threads=1)
    exported = export_checkpoint(out, tmp_path / "at40", inference_samples=300)
    final, mine = load_file(out / "model.safetensors"), load_file(exported / "model.safetensors")
    assert final.keys() == mine.keys()
    assert all(np.array_equal(final[k], mine[k]) for k in final)  # weights and finalized cov
    assert np.array_equal(InferenceSet.load(out).next_obs, InferenceSet.load(exported).next_obs)
    assert bfm_gym.load(export_checkpoint(out, tmp_path / "at20", step=20)).metadata.training_steps == 20
    with pytest.raises(FileNotFoundError, match="available: 20, 40"):
        export_checkpoint(out, tmp_path / "x", step=30)
    with pytest.raises(FileExistsError, match="not empty"):
        export_checkpoint(out, tmp_path / "at40")
    proc = subprocess.run([sys.executable, "-m", "bfm_gym.cli.main", "export", str(out), "--out",
                           str(tmp_path / "cli"), "--step", "7"], capture_output=True, text=True)
    assert proc.returncode == 1 and "No checkpoint at step 7" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_init_from_continues_a_saved_model(maze_data: Path, tmp_path: Path) -> None:
    """`pretrain(init_from=MODEL)`: the trainer starts from the model's weights (online and
    targets), counts on from its steps, resumes on a rerun, and refuses a model of another
    family, architecture or a different start model for the same run."""
    import torch

    from bfm_gym.models import CheckpointError, FBTrainer

    kw = dict(config="tiny", eval_every=0, checkpoint_every=10, inference_samples=200,
              progress=False, threads=1)
    first = pretrain(maze_data, tmp_path / "first", updates=20, **kw)
    saved = bfm_gym.load(first).model.state_dict()
    trainer = FBTrainer(make_config("point_mass_maze", "tiny"), 4, 2, device="cpu", seed=7, threads=1)
    assert trainer.start_from(first) == 20 and trainer.step == 20
    assert all(torch.equal(v, saved[k]) for k, v in trainer.model.state_dict().items())
    targets = trainer.agent.target_state_dict()
    assert targets and all(torch.equal(v, saved[k.removeprefix("target_")]) for k, v in targets.items())

    cont = pretrain(maze_data, tmp_path / "cont", updates=30, init_from=first, **kw)
    bfm = bfm_gym.load(cont)
    assert bfm.metadata.training_steps == 30
    assert not torch.equal(bfm.model.state_dict()["forward_map.embed_sa.0.weight"],
                           saved["forward_map.embed_sa.0.weight"])
    spec = json.loads((cont / "training" / "run.json").read_text())["spec"]
    assert spec["init_from"]["training_steps"] == 20 and len(spec["init_from"]["sha256"]) == 64
    pretrain(maze_data, tmp_path / "cont", updates=40, init_from=first, **kw)  # the rerun resumes
    assert bfm_gym.load(cont).metadata.training_steps == 40
    with pytest.raises(ValueError, match=r"another dataset, config or seed.*init_from"):
        pretrain(maze_data, tmp_path / "cont", updates=50, init_from=cont, **kw)
    with pytest.raises(ValueError, match="does not go past the 20 updates"):
        pretrain(maze_data, tmp_path / "short", updates=20, init_from=first, **kw)
    with pytest.raises(CheckpointError, match="do not fit this config"):
        pretrain(maze_data, tmp_path / "wide", updates=30, init_from=first,
                 overrides={"z_dim": 12}, **kw)
    with pytest.raises(ValueError, match=r"is a bfm_gym\.fb model and this run trains bfm_gym\.hilp"):
        pretrain(maze_data, tmp_path / "hilp", updates=30, init_from=first, family="hilp", **kw)


def test_export_averages_kept_checkpoints_and_refinalizes_cov(maze_data: Path, tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    from bfm_gym.pretraining import export_checkpoint

    out = tmp_path / "model"
    pretrain(maze_data, out, config="tiny", updates=60, eval_every=0, checkpoint_every=20,
             keep_every=20, inference_samples=300, progress=False, threads=1)
    ckpt = out / "training" / "checkpoints"
    w40, w60 = (load_file(ckpt / f"step_{s:09d}" / "model.safetensors") for s in (40, 60))
    one = load_file(export_checkpoint(out, tmp_path / "plain", inference_samples=300) / "model.safetensors")
    same = load_file(export_checkpoint(out, tmp_path / "avg1", average=1, inference_samples=300)
                     / "model.safetensors")
    assert all(np.array_equal(one[k], same[k]) for k in one)  # average=1 is the plain export
    from bfm_gym.models.checkpoint import ModelFolder

    reads, real_load = [], ModelFolder.load

    def counting_load(self, path, *args, **kwargs):  # type: ignore[no-untyped-def]
        reads.append(Path(path).name)
        return real_load(self, path, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ModelFolder, "load", counting_load)
        avg_dir = export_checkpoint(out, tmp_path / "avg2", average=2, inference_samples=300)
    # the newest checkpoint is loaded once (as the trainer), only the older one for the average
    assert reads.count("step_000000060") == 1 and reads.count("step_000000040") == 1, reads
    avg = load_file(avg_dir / "model.safetensors")
    weights = [k for k in avg if k not in ("cov", "cov_samples")]
    assert weights and all(
        np.allclose(avg[k], (w40[k].astype(np.float64) + w60[k]) / 2, rtol=0, atol=1e-7) for k in weights)
    assert not np.array_equal(avg[weights[0]], w60[weights[0]])
    # cov = E[B B^T] belongs to the averaged B: finalized again, not the mean of the two covs
    assert not np.allclose(avg["cov"], (w40["cov"] + w60["cov"]) / 2, atol=1e-6)
    assert np.allclose(avg["cov"], avg["cov"].T, atol=1e-6)
    bfm = bfm_gym.load(avg_dir)
    assert bfm.metadata.extra["averaged_steps"] == [40, 60] and bfm.metadata.training_steps == 60
    with pytest.raises(FileNotFoundError, match="average=4 needs 4 kept checkpoints"):
        export_checkpoint(out, tmp_path / "avg4", average=4)
    with pytest.raises(ValueError, match="average=0"):
        export_checkpoint(out, tmp_path / "avg0", average=0)


def test_export_reads_the_runs_moving_average(maze_data: Path, tmp_path: Path) -> None:
    from safetensors.numpy import load_file

    from bfm_gym.pretraining import export_checkpoint

    out = tmp_path / "model"
    pretrain(maze_data, out, config="tiny", overrides={"ema_tau": 0.1}, updates=30, eval_every=0,
             checkpoint_every=30, inference_samples=300, progress=False, threads=1)
    final = load_file(out / "model.safetensors")
    ema = load_file(export_checkpoint(out, tmp_path / "ema", inference_samples=300) / "model.safetensors")
    online = load_file(export_checkpoint(out, tmp_path / "online", weights="online")
                       / "model.safetensors")
    ckpt = load_file(out / "training" / "checkpoints" / "step_000000030" / "model.safetensors")
    assert all(k in ("cov", "cov_samples") or np.array_equal(final[k], ema[k])
               for k in final)  # the final model is the average, as the default export
    assert all(k in ("cov", "cov_samples") or np.array_equal(ckpt[k], online[k])
               for k in ckpt)
    assert not np.array_equal(ema["actor.mlp.0.weight"], online["actor.mlp.0.weight"])
    assert bfm_gym.load(tmp_path / "ema").metadata.extra["weight_ema"]["updates"] == 31
    with pytest.raises(ValueError, match="choose one"):
        export_checkpoint(out, tmp_path / "x", weights="ema", average=2)
