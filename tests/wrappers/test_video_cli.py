"""``bfm-gym video``: GIF with an explicit z or a zero-shot z; clear errors otherwise."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from bfm_gym.cli.main import cli
from bfm_gym.envs import make_env
from bfm_gym.evaluation.zero_shot import InferenceSet
from bfm_gym.evaluation.video import VideoError, write_video
from latent_testenvs import tiny_bfm

SIZE = ["--width", "64", "--height", "48"]


@pytest.fixture(scope="module")
def model_with_samples(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny walker model shipping 200 inference samples from random-action rollouts."""
    path = tiny_bfm("walker").save(tmp_path_factory.mktemp("video") / "walker")
    env = make_env("walker")
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    obs, states = [], []
    for _ in range(200):
        o, *_ = env.step(rng.uniform(-1, 1, 6))
        obs.append(o)
        states.append(env.get_state())
    InferenceSet("walker", np.stack(obs), np.stack(states)).save(path)
    return path


def _run(*args: str):
    """``bfm-gym video ARGS`` through the group, whose handler turns errors into one line."""
    return CliRunner().invoke(cli, ["video", *args])


def test_gif_with_explicit_z(model_with_samples: Path, tmp_path: Path) -> None:
    out = tmp_path / "clips" / "walk.gif"
    z = ",".join(["0.3"] * 8)
    result = _run("--model", str(model_with_samples), "--task", "walker-run", "--z", z,
                  "--steps", "16", "--out", str(out), *SIZE)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert f"wrote {out}: 17 frames at 40 fps" in result.output
    gif = Image.open(out)
    assert gif.size == (64, 48) and gif.n_frames == 9  # 40 fps kept every 2nd frame
    assert gif.info["duration"] == 50


def test_gif_with_zero_shot_z(model_with_samples: Path, tmp_path: Path) -> None:
    out = tmp_path / "stand.gif"
    result = _run("--model", str(model_with_samples), "--task", "stand", "--z-from-task",
                  "--steps", "4", "--out", str(out), *SIZE)  # fmt: skip
    assert result.exit_code == 0, result.output
    assert out.is_file()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--z", "1,2"], "z has 2 numbers; the model's latents have z_dim=8"),
        (["--z", ",".join(["0"] * 8)], "all zeros"),
        (["--z", "a,b"], "comma-separated numbers"),
        ([], "exactly one of --z"),
        (["--z", "1,1,1,1,1,1,1,1", "--z-from-task"], "exactly one of --z"),
        (["--z", "1,1,1,1,1,1,1,1", "--task", "moonwalk"], "moonwalk"),
    ],
    ids=["short-z", "zero-z", "text-z", "no-z", "both", "bad-task"],
)
def test_errors_are_one_line(
    model_with_samples: Path, tmp_path: Path, args: list, message: str
) -> None:
    base = ["--model", str(model_with_samples), "--task", "run", "--steps", "2",
            "--out", str(tmp_path / "x.gif")]  # fmt: skip
    result = _run(*base, *args)
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_zero_shot_without_samples_says_so(tmp_path: Path) -> None:
    path = tiny_bfm("walker").save(tmp_path / "bare")
    result = _run("--model", str(path), "--task", "run", "--z-from-task", "--out",
                  str(tmp_path / "x.gif"))  # fmt: skip
    assert result.exit_code != 0 and "ships no inference samples" in result.output


def test_bad_extension_and_mp4_without_ffmpeg(tmp_path: Path) -> None:
    frames = [np.zeros((8, 8, 3), np.uint8)] * 3
    with pytest.raises(VideoError, match=r"\.gif or \.mp4"):
        write_video(frames, tmp_path / "x.avi", 30)
    if importlib.util.find_spec("imageio_ffmpeg") is not None:
        assert write_video(frames, tmp_path / "x.mp4", 30).stat().st_size > 0
    else:
        with pytest.raises(VideoError, match=r"pip install 'bfm-gym\[video\]'"):
            write_video(frames, tmp_path / "x.mp4", 30)
