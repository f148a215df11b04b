"""The Python API's boundary (``bfm_gym.load``, ``wrap``, ``adapt``, ``compare``) refuses user
mistakes with a one-line error naming the problem, before anything runs or is written.

The same kinds of input as the command-line table (``tests/cli/test_bad_inputs.py``):
counts, seeds, output paths, names, config values of the wrong type, plus damaged model
folders, wrapper actions and lifecycle mistakes.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

import bfm_gym
from bfm_gym.errors import UserError
from bfm_gym.experiments import adapt
from bfm_gym.experiments.compare import compare

QUICK = {"max_episode_steps": 5, "zero_shot_episodes": 0, "progress": False}


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("api")
    (root / "file.txt").write_text("not a folder")
    (root / "mine").mkdir()
    (root / "mine" / "notes.txt").write_text("the user's own work")
    return {"tmp": root, "file": root / "file.txt", "mine": root / "mine"}


def _adapt(paths: dict[str, Path], **kw: Any) -> Any:
    args = {"model": "walker", "task": "run", "episodes": 1, **QUICK, **kw}
    return adapt(args.pop("model"), args.pop("task"), **args)


def _compare(paths: dict[str, Path], **kw: Any) -> Any:
    args = {"model": "walker", "tasks": "run", "adapters": "zero-shot", "out": paths["tmp"] / "cmp",
            "seeds": 1, "episodes": 1, "max_episode_steps": 5, "workers": 1, "progress": False, **kw}
    return compare(args.pop("model"), args.pop("tasks"), args.pop("adapters"), **args)


# (id, call, exception type, words the message must hold)
API: list[tuple[str, Callable[[dict[str, Path]], Any], type[BaseException], list[str]]] = [
    ("load-unknown", lambda p: bfm_gym.load("walkr"), ValueError, ["walkr", "walker"]),
    ("load-int", lambda p: bfm_gym.load(123), UserError, ["model name", "int"]),
    ("load-none", lambda p: bfm_gym.load(None), UserError, ["model folder", "NoneType"]),
    ("load-device-name", lambda p: bfm_gym.load("walker", device="gpu"), UserError, ["'gpu'", "cuda"]),
    ("load-empty-folder", lambda p: bfm_gym.load(p["tmp"]), ValueError, ["config.json"]),
    ("wrap-not-env", lambda p: bfm_gym.wrap("walker"), TypeError, ["Gymnasium env", "str"]),
    ("wrap-none", lambda p: bfm_gym.wrap(None), TypeError, ["Gymnasium env"]),
    ("wrap-model", lambda p: bfm_gym.wrap(gym.make("bfm_gym/walker-run-v0"), model="walkr"), ValueError,
     ["walkr", "walker"]),
    ("wrap-z-hold", lambda p: bfm_gym.wrap(gym.make("bfm_gym/walker-run-v0"), z_hold=0), ValueError,
     ["z_hold", "0"]),
    ("wrap-other-domain", lambda p: bfm_gym.wrap(gym.make("bfm_gym/cheetah-run-v0"), model="walker"),
     ValueError, ["observation space", "walker"]),
    ("adapt-episodes-0", lambda p: _adapt(p, episodes=0), UserError, ["episodes", ">= 1", "0"]),
    ("adapt-episodes-float", lambda p: _adapt(p, episodes=2.5), UserError, ["episodes", "2.5"]),
    ("adapt-episodes-bool", lambda p: _adapt(p, episodes=True), UserError, ["episodes", "True"]),
    ("adapt-seed", lambda p: _adapt(p, seed=-1), UserError, ["seed", ">= 0"]),
    ("adapt-out-file", lambda p: _adapt(p, out=p["file"]), UserError, ["file.txt", "not a folder"]),
    ("adapt-out-under-file", lambda p: _adapt(p, out=p["file"] / "x"), UserError, ["is a file"]),
    ("adapt-foreign-folder", lambda p: _adapt(p, out=p["mine"]), UserError,
     ["not a bfm_gym adapt run folder", "run.json"]),
    ("adapt-adapter", lambda p: _adapt(p, adapter="optii"), UserError, ["optii", "did you mean 'opti'"]),
    ("adapt-config-text", lambda p: _adapt(p, config={"beta": "abc"}), UserError,
     ["OptiConfig.beta", "float", "'abc'"]),
    ("adapt-config-bool", lambda p: _adapt(p, config={"beta": True}), UserError,
     ["OptiConfig.beta", "float", "bool"]),
    ("adapt-config-int-field", lambda p: _adapt(p, config={"candidates": 2.5}), UserError,
     ["OptiConfig.candidates", "int", "2.5"]),
    ("adapt-config-unknown", lambda p: _adapt(p, config={"betta": 1.0}), UserError, ["betta", "'beta'"]),
    ("adapt-config-list", lambda p: _adapt(p, config=[1]), UserError, ["config", "dict"]),
    ("adapt-task", lambda p: _adapt(p, task="runn"), ValueError, ["runn", "run"]),
    ("adapt-task-type", lambda p: _adapt(p, task=5), UserError, ["task", "5"]),
    ("adapt-no-task", lambda p: _adapt(p, task=None), ValueError, ["task"]),
    ("adapt-goal", lambda p: _adapt(p, task=None, goal=(1.0,)), UserError, ["goal", "two"]),
    ("adapt-model", lambda p: _adapt(p, model=123), UserError, ["model", "int"]),
    ("adapt-z-hold", lambda p: _adapt(p, z_hold=0), UserError, ["z_hold", "0"]),
    ("adapt-oracle", lambda p: _adapt(p, oracle="abc"), UserError, ["oracle", "'abc'"]),
    ("adapt-budget", lambda p: _adapt(p, budget_steps=0), UserError, ["budget_steps"]),
    ("compare-episodes-0", lambda p: _compare(p, episodes=0), UserError, ["episodes", "0"]),
    ("compare-out-file", lambda p: _compare(p, out=p["file"]), UserError, ["file.txt", "not a folder"]),
    ("compare-foreign-folder", lambda p: _compare(p, out=p["mine"]), UserError,
     ["not a bfm_gym comparison folder"]),
    ("compare-adapter", lambda p: _compare(p, adapters="zero-shot,optii"), UserError, ["optii", "'opti'"]),
    ("compare-seeds-negative", lambda p: _compare(p, seeds=-1), ValueError, ["seeds"]),
    ("compare-seeds-repeated", lambda p: _compare(p, seeds=[0, 0]), ValueError, ["seeds", "[0, 0]"]),
    ("compare-seeds-text", lambda p: _compare(p, seeds=["a"]), UserError, ["seeds", "'a'"]),
    ("compare-config-type", lambda p: _compare(p, adapters="opti", config={"opti": {"beta": "abc"}}),
     ValueError, ["OptiConfig.beta", "float"]),
    ("compare-config-flat", lambda p: _compare(p, adapters="opti", config={"beta": 1.0}), UserError,
     ["adapter -> {field: value}"]),
    ("compare-config-budget", lambda p: _compare(p, adapters="opti", config={"opti": {"episodes": 3}}),
     ValueError, ["unequal budgets"]),
    ("compare-no-tasks", lambda p: _compare(p, tasks=""), ValueError, ["task"]),
    ("compare-executor", lambda p: _compare(p, executor="dask"), ValueError, ["'dask'", "local"]),
    ("compare-workers", lambda p: _compare(p, workers=0), UserError, ["workers"]),
    ("compare-checkpoints", lambda p: _compare(p, checkpoints=[0]), ValueError, ["checkpoints"]),
    ("compare-oracle-text", lambda p: _compare(p, oracle={"run": "abc"}), UserError, ["oracle", "'abc'"]),
    ("compare-score-window", lambda p: _compare(p, score_window=0), UserError, ["score_window"]),
]


@pytest.mark.parametrize(("call", "kind", "words"), [row[1:] for row in API], ids=[row[0] for row in API])
def test_boundary_refuses_bad_input(paths: dict[str, Path], call: Callable[[dict[str, Path]], Any],
                                    kind: type[BaseException], words: list[str]) -> None:
    with pytest.raises(kind) as info:
        call(paths)
    message = str(info.value)
    assert "\n" not in message, message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


def test_rejected_calls_write_nothing(paths: dict[str, Path]) -> None:
    out = paths["tmp"] / "never"
    for kw in ({"episodes": 0}, {"config": {"beta": "abc"}}, {"adapter": "optii"}):
        with pytest.raises(UserError):
            _adapt(paths, out=out, **kw)
        assert not out.exists()
    with pytest.raises(UserError):
        _compare(paths, out=out, episodes=0)
    assert not out.exists()


def _damaged(tmp: Path, name: str, damage: Callable[[Path], Any]) -> Path:
    folder = tmp / name
    shutil.copytree(Path(bfm_gym.pretrained.resolve("walker")), folder)
    damage(folder)
    return folder


def _truncate(path: Path, size: int | None = None) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2 if size is None else size])


def _set_model_field(key: str, value: Any) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        config = json.loads((folder / "config.json").read_text())
        config["model"]["config"][key] = value
        (folder / "config.json").write_text(json.dumps(config))

    return damage


MODEL_FOLDERS: list[tuple[str, Callable[[Path], Any], list[str]]] = [
    ("config-truncated", lambda f: _truncate(f / "config.json"), ["config.json", "not valid JSON"]),
    ("config-random-bytes", lambda f: (f / "config.json").write_bytes(os.urandom(300)), ["config.json"]),
    ("config-list", lambda f: (f / "config.json").write_text("[1, 2]"), ["config.json", "JSON object"]),
    ("config-wrong-type", _set_model_field("z_dim", "abc"), ["FBConfig.z_dim", "int"]),
    ("config-float-for-int", _set_model_field("z_dim", 2.5), ["FBConfig.z_dim", "2.5"]),
    ("config-unknown-field", _set_model_field("zdim", 8), ["zdim", "z_dim"]),
    ("weights-missing", lambda f: (f / "model.safetensors").unlink(), ["model.safetensors", "missing"]),
    ("weights-truncated", lambda f: _truncate(f / "model.safetensors"), ["model.safetensors", "truncated"]),
    ("weights-random-bytes", lambda f: (f / "model.safetensors").write_bytes(os.urandom(4096)),
     ["model.safetensors"]),
    ("weights-pickle", lambda f: (f / "model.safetensors").write_bytes(pickle.dumps({"w": [1.0]})),
     ["model.safetensors"]),
]


@pytest.mark.parametrize(("damage", "words"), [row[1:] for row in MODEL_FOLDERS],
                         ids=[row[0] for row in MODEL_FOLDERS])
def test_damaged_model_folders_are_refused(tmp_path: Path, damage: Callable[[Path], Any],
                                           words: list[str]) -> None:
    folder = _damaged(tmp_path, "model", damage)
    with pytest.raises(ValueError) as info:
        bfm_gym.load(folder)
    assert "\n" not in str(info.value)
    for word in words:
        assert word in str(info.value)


@pytest.fixture(scope="module")
def latent_env() -> Any:
    env = bfm_gym.wrap(gym.make("bfm_gym/walker-run-v0"))
    yield env
    env.close()


ACTIONS: list[tuple[str, Any, list[str]]] = [
    ("nan", np.full(50, np.nan, np.float32), ["NaN"]),
    ("inf", np.full(50, np.inf, np.float32), ["NaN or inf"]),
    ("shape", np.zeros(3, np.float32), ["shape (3,)", "(50,)"]),
    ("batched", np.zeros((1, 50), np.float32), ["shape (1, 50)"]),
    ("text", "abc", ["dtype"]),
    ("none", None, ["dtype"]),
]


@pytest.mark.parametrize(("action", "words"), [row[1:] for row in ACTIONS], ids=[row[0] for row in ACTIONS])
def test_bad_latent_actions_are_refused(latent_env: Any, action: Any, words: list[str]) -> None:
    latent_env.reset(seed=0)
    with pytest.raises(ValueError) as info:
        latent_env.step(action)
    assert "\n" not in str(info.value)
    for word in words:
        assert word in str(info.value)


def test_lifecycle_mistakes() -> None:
    env = bfm_gym.wrap(gym.make("bfm_gym/walker-run-v0"))
    z = env.action_space.sample()
    with pytest.raises(gym.error.ResetNeeded, match="before reset"):
        env.step(z)
    env.reset(seed=0)
    env.step(z)
    env.close()
    with pytest.raises(RuntimeError, match="closed"):
        env.step(z)


def test_out_of_box_latent_actions_warn_or_raise_with_strict() -> None:
    far = np.full(50, 100.0, np.float32)
    env = bfm_gym.wrap(gym.make("bfm_gym/walker-run-v0"), strict=True)
    env.reset(seed=0)
    with pytest.raises(ValueError, match=r"outside the action space.*strict=True"):
        env.step(far)
    env.close()
    env = bfm_gym.wrap(gym.make("bfm_gym/walker-run-v0"))
    env.reset(seed=0)
    with pytest.warns(UserWarning, match="strict=True to reject"):
        env.step(far)
    env.close()
