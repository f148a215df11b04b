"""`pretrain --family hilp` on real (tiny) data: a HILP model folder that loads through the
family registry, resumes, exports a checkpoint, and runs `eval` from the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import bfm_gym
from bfm_gym.data.collection import collect
from bfm_gym.models.hilp import HILPHandle
from bfm_gym.pretraining import export_checkpoint, make_config, pretrain


@pytest.fixture(scope="module")
def maze_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("data") / "maze"
    collect("point_mass_maze", out, agent="ou", episodes=2, seed=0, progress=False, coverage=False)
    return out


def test_pretrain_hilp_loads_resumes_and_exports(maze_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "hilp"
    kw = dict(family="hilp", config="tiny", eval_every=0, checkpoint_every=10,
              inference_samples=300, progress=False, threads=1)
    pretrain(maze_data, out, updates=10, **kw)
    pretrain(maze_data, out, updates=20, **kw)  # the same run, continued
    bfm = bfm_gym.load(out)
    assert isinstance(bfm, HILPHandle) and bfm.metadata.training_steps == 20
    assert bfm.config == make_config("point_mass_maze", "tiny", family="hilp")
    assert bfm.samples is not None and len(bfm.samples) == 300
    run = json.loads((out / "training" / "run.json").read_text())
    assert run["spec"]["family"] == "hilp"
    exported = export_checkpoint(out, tmp_path / "step10", step=10)
    assert bfm_gym.load(exported).metadata.training_steps == 10
    with pytest.raises(ValueError, match="another dataset, config or seed"):
        pretrain(maze_data, out, updates=20, **{**kw, "family": "fb"})
    # a run started before the config had amp / fused_adam resumes, those at their defaults
    for path, keys in ((out / "training" / "run.json", ("spec", "config")),
                       (out / "training" / "checkpoints" / "step_000000020" / "trainer.json", ("config",))):
        data = json.loads(path.read_text())
        cfg = data
        for key in keys:
            cfg = cfg[key]
        del cfg["amp"], cfg["fused_adam"]
        path.write_text(json.dumps(data))
    pretrain(maze_data, out, updates=25, **kw)
    assert bfm_gym.load(out).metadata.training_steps == 25
    with pytest.raises(ValueError, match=r"expectile: 0\.5 -> 0\.7"):  # the message names the change
        pretrain(maze_data, out, updates=30, overrides={"expectile": 0.7}, **kw)


def test_cli_pretrain_family_hilp_and_eval(maze_data: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli-hilp"

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "bfm_gym.cli.main", *args],
                              capture_output=True, text=True, timeout=600)

    proc = cli("pretrain", "--family", "hilp", "--dataset", str(maze_data), "--config", "tiny",
               "--set", "expectile=0.7", "--out", str(out), "--updates", "5", "--eval-every", "0",
               "--inference-samples", "300", "--threads", "1", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert bfm_gym.load(out).config.expectile == 0.7
    x, y = bfm_gym.load(out).samples.next_obs[7, :2]  # a goal the data reached
    proc = cli("eval", "--model", str(out), "--goal", f"{x:.3f},{y:.3f}", "--episodes", "1")
    assert proc.returncode == 0, proc.stderr
    assert "95% CI" in proc.stdout
    bad = cli("pretrain", "--family", "hilp", "--dataset", str(maze_data), "--config", "tiny",
              "--set", "ortho_coef=1", "--out", str(tmp_path / "bad"), "--updates", "1")
    assert bad.returncode != 0 and "unknown HILPConfig field 'ortho_coef'" in bad.stderr
    assert "Traceback" not in bad.stderr
