"""Every ``bfm-gym`` command answers a user mistake with one ``Error:`` line, never a traceback.

The table drives each command in-process through click's runner (the same ``cli`` group
the console script runs) with inputs a new user gets wrong: counts of zero, output paths
that are files, misspelt names, ``--set`` values of the wrong type, damaged run folders,
reward functions that raise. Each row states the exit status (2: click rejected the option
before the command ran; 1: the command refused the input) and words the message must hold.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from bfm_gym.cli.framework import BfmGroup
from bfm_gym.cli.main import cli

REWARDS = '''
def boom(physics):
    return 1 / 0

def two_args(physics, action):
    return 0.0
'''


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A file, a folder, a tiny real dataset, a finished adapt run and a reward module."""
    from bfm_gym.data.collection import collect

    root = tmp_path_factory.mktemp("bad")
    (root / "file.txt").write_text("not a folder")
    (root / "folder").mkdir()
    (root / "mine").mkdir()
    (root / "mine" / "notes.txt").write_text("the user's own work")
    (root / "rewards").mkdir()
    (root / "rewards" / "my_rewards.py").write_text(REWARDS)
    dataset = collect("point_mass_maze", root / "maze", agent="random", episodes=1, seed=0,
                      progress=False, coverage=False)
    run = root / "run"
    done = CliRunner().invoke(cli, [*ADAPT, "--adapter", "zero-shot", "--episodes", "1", "--out", str(run)])
    assert done.exit_code == 0, done.stderr
    return {"tmp": str(root), "file": str(root / "file.txt"), "folder": str(root / "folder"), "mine": str(root / "mine"),
            "dataset": str(dataset), "run": str(run), "rewards": str(root / "rewards")}


ADAPT = ["adapt", "--model", "walker", "--task", "run", "--no-progress", "--max-episode-steps", "5",
         "--zero-shot-episodes", "0"]
COMPARE = ["compare", "--model", "walker", "--tasks", "run", "--no-progress", "--max-episode-steps", "5"]
PRETRAIN = ["pretrain", "--dataset", "{dataset}", "--config", "tiny", "--updates", "2", "--no-progress"]
EVAL = ["eval", "--model", "walker", "--episodes", "1"]
VIDEO = ["video", "--model", "walker", "--task", "run", "--steps", "2"]

# (id, argv, exit status, words the Error line must hold)
TABLE: list[tuple[str, list[str], int, list[str]]] = [
    # the group itself
    ("unknown-command", ["adaptt"], 2, ["No such command", "adapt"]),
    ("bad-int", [*ADAPT, "--episodes", "abc", "--out", "{tmp}/a0"], 2, ["--episodes", "abc"]),
    # collect
    ("collect-episodes-0", ["collect", "--domain", "walker", "--episodes", "0", "--out", "{tmp}/c1"], 2,
     ["--episodes", "0"]),
    ("collect-steps-negative", ["collect", "--domain", "walker", "--steps", "-5", "--out", "{tmp}/c2"], 2,
     ["--steps", "-5"]),
    ("collect-out-is-file", ["collect", "--domain", "walker", "--episodes", "1", "--out", "{file}"], 2,
     ["--out", "file.txt", "not a folder"]),
    ("collect-out-under-file", ["collect", "--domain", "walker", "--episodes", "1", "--out", "{file}/x"], 2,
     ["--out", "is a file"]),
    ("collect-no-size", ["collect", "--domain", "walker", "--out", "{tmp}/c3"], 2, ["--steps N or --episodes N"]),
    ("collect-domain", ["collect", "--domain", "walkr", "--episodes", "1", "--out", "{tmp}/c4"], 1,
     ["walkr", "walker"]),
    ("collect-agent", ["collect", "--domain", "walker", "--agent", "rndd", "--episodes", "1",
                       "--out", "{tmp}/c5"], 1, ["rndd", "rnd"]),
    ("collect-set-type", ["collect", "--domain", "walker", "--agent", "rnd", "--episodes", "1",
                          "--set", "warmup_steps=2.5", "--out", "{tmp}/c6"], 1,
     ["RNDConfig.warmup_steps", "int", "2.5"]),
    ("collect-set-syntax", ["collect", "--domain", "walker", "--episodes", "1", "--set", "warmup_steps",
                            "--out", "{tmp}/c7"], 1, ["--set", "KEY=VALUE"]),
    ("collect-set-unknown", ["collect", "--domain", "walker", "--agent", "rnd", "--episodes", "1",
                             "--set", "warmup_step=3", "--out", "{tmp}/c8"], 1, ["warmup_step", "warmup_steps"]),
    ("collect-seed-negative", ["collect", "--domain", "walker", "--episodes", "1", "--seed", "-1",
                               "--out", "{tmp}/c9"], 2, ["--seed", "-1"]),
    ("collect-overwrite-foreign", ["collect", "--domain", "walker", "--episodes", "1", "--overwrite",
                                   "--out", "{mine}"], 1, ["not a bfm_gym dataset", "--overwrite would delete it"]),
    ("collect-threads-0", ["collect", "--domain", "walker", "--episodes", "1", "--threads", "0",
                           "--out", "{tmp}/c10"], 2, ["--threads"]),
    # coverage
    ("coverage-not-dataset", ["coverage", "{folder}"], 1, ["not a bfm_gym dataset"]),
    ("coverage-missing", ["coverage", "{tmp}/nope"], 1, ["nope"]),
    # pretrain
    ("pretrain-updates-0", [*PRETRAIN, "--out", "{tmp}/p1", "--updates", "0"], 2, ["--updates", "0"]),
    ("pretrain-out-is-file", [*PRETRAIN, "--out", "{file}"], 2, ["--out", "not a folder"]),
    ("pretrain-set-bool-for-float", [*PRETRAIN, "--out", "{tmp}/p2", "--set", "lr_f=true"], 1,
     ["FBConfig.lr_f", "float", "true"]),
    ("pretrain-set-float-for-int", [*PRETRAIN, "--out", "{tmp}/p3", "--set", "z_dim=2.5"], 1,
     ["FBConfig.z_dim", "int", "2.5"]),
    ("pretrain-set-text-for-float", [*PRETRAIN, "--out", "{tmp}/p4", "--set", "lr_f=abc"], 1,
     ["FBConfig.lr_f", "float", "abc"]),
    ("pretrain-set-choice", [*PRETRAIN, "--out", "{tmp}/p5", "--set", "actor_loss=awrr"], 1,
     ["FBConfig.actor_loss", "awr"]),
    ("pretrain-set-unknown", [*PRETRAIN, "--out", "{tmp}/p6", "--set", "zdim=8"], 1, ["zdim", "z_dim"]),
    ("pretrain-set-twice", [*PRETRAIN, "--out", "{tmp}/p7", "--set", "z_dim=8", "--set", "z_dim=9"], 1,
     ["z_dim", "twice"]),
    ("pretrain-config", [*PRETRAIN, "--out", "{tmp}/p8", "--config", "cpuu"], 1, ["cpuu", "preset"]),
    ("pretrain-config-file", [*PRETRAIN, "--out", "{tmp}/p12", "--config", "{file}"], 1,
     ["Config file", "file.txt", "not valid JSON"]),
    ("pretrain-dataset-missing", ["pretrain", "--dataset", "{tmp}/nope", "--out", "{tmp}/p9"], 1, ["nope"]),
    ("pretrain-overwrite-foreign", [*PRETRAIN, "--out", "{mine}", "--overwrite"], 1,
     ["not a bfm_gym training run", "--overwrite would delete it"]),
    ("pretrain-threads", [*PRETRAIN, "--out", "{tmp}/p10", "--threads", "zero"], 2, ["--threads", "zero"]),
    ("pretrain-device", [*PRETRAIN, "--out", "{tmp}/p11", "--device", "gpu"], 2, ["--device", "'gpu'", "cuda"]),
    # eval
    ("eval-episodes-0", [*EVAL, "--task", "run", "--episodes", "0"], 2, ["--episodes", "0"]),
    ("eval-task", [*EVAL, "--task", "runn"], 1, ["runn", "run"]),
    ("eval-model", ["eval", "--model", "walkr", "--task", "run"], 1, ["walkr", "walker"]),
    ("eval-two-targets", [*EVAL, "--task", "run", "--goal", "1,2"], 1, ["exactly one"]),
    ("eval-json-is-folder", [*EVAL, "--task", "run", "--json", "{folder}"], 2, ["--json", "folder"]),
    ("eval-reward-raises", [*EVAL, "--reward", "my_rewards:boom"], 1,
     ["my_rewards:boom", "walker/boom", "fn(physics)", "ZeroDivisionError"]),
    ("eval-reward-signature", [*EVAL, "--reward", "my_rewards:two_args"], 1,
     ["my_rewards:two_args", "walker/two_args", "fn(physics)", "action"]),
    ("eval-reward-module", [*EVAL, "--reward", "no_such_module:fn"], 1, ["no_such_module"]),
    ("eval-reward-name", [*EVAL, "--reward", "my_rewards:nope"], 1, ["my_rewards", "nope"]),
    ("eval-reward-syntax", [*EVAL, "--reward", "my_rewards"], 1, ["module:function"]),
    # export, card
    ("export-not-run", ["export", "{folder}", "--out", "{tmp}/e1"], 1, ["folder"]),
    ("export-out-is-file", ["export", "{folder}", "--out", "{file}"], 2, ["--out", "not a folder"]),
    ("card-missing", ["card", "{tmp}/nope"], 1, ["nope"]),
    ("card-episodes-0", ["card", "{folder}", "--episodes", "0"], 2, ["--episodes"]),
    ("card-gradient-seeds-1", ["card", "{folder}", "--gradient-check", "--gradient-seeds", "1"], 2,
     ["--gradient-seeds"]),
    # adapt
    ("adapt-episodes-0", [*ADAPT, "--episodes", "0", "--out", "{tmp}/a1"], 2, ["--episodes", "0"]),
    ("adapt-episodes-negative", [*ADAPT, "--episodes", "-3", "--out", "{tmp}/a2"], 2, ["--episodes", "-3"]),
    ("adapt-out-is-file", [*ADAPT, "--out", "{file}"], 2, ["--out", "file.txt", "not a folder"]),
    ("adapt-adapter", [*ADAPT, "--adapter", "optii", "--out", "{tmp}/a3"], 1,
     ["optii", "did you mean 'opti'", "zero-shot"]),
    ("adapt-set-bool-for-float", [*ADAPT, "--set", "beta=true", "--out", "{tmp}/a4"], 1,
     ["OptiConfig.beta", "float", "true"]),
    ("adapt-set-float-for-int", [*ADAPT, "--set", "candidates=2.5", "--out", "{tmp}/a5"], 1,
     ["OptiConfig.candidates", "int", "2.5"]),
    ("adapt-set-text-for-float", [*ADAPT, "--set", "beta=abc", "--out", "{tmp}/a6"], 1,
     ["OptiConfig.beta", "float", "abc"]),
    ("adapt-set-unknown", [*ADAPT, "--set", "betta=1", "--out", "{tmp}/a7"], 1, ["betta", "beta"]),
    ("adapt-z-hold", [*ADAPT, "--z-hold", "0", "--out", "{tmp}/a8"], 2, ["--z-hold", "episode"]),
    ("adapt-goal", [*ADAPT, "--goal", "1", "--out", "{tmp}/a9"], 1, ["goal", "two"]),
    ("adapt-task", ["adapt", "--model", "walker", "--task", "runn", "--out", "{tmp}/a10"], 1, ["runn", "run"]),
    ("adapt-max-steps-0", [*ADAPT, "--max-episode-steps", "0", "--out", "{tmp}/a11"], 2,
     ["--max-episode-steps"]),
    ("adapt-foreign-folder", [*ADAPT, "--out", "{mine}"], 1, ["not a bfm_gym adapt run folder"]),
    ("adapt-other-arguments", [*ADAPT, "--adapter", "zero-shot", "--episodes", "1", "--seed", "4",
                               "--out", "{run}"], 1, ["other arguments", "seed", "0 there", "4 now"]),
    # compare
    ("compare-episodes-0", [*COMPARE, "--adapters", "opti", "--episodes", "0", "--out", "{tmp}/m1"], 2,
     ["--episodes"]),
    ("compare-out-is-file", [*COMPARE, "--adapters", "opti", "--out", "{file}"], 2, ["--out", "not a folder"]),
    ("compare-adapter", [*COMPARE, "--adapters", "opti,lolla", "--out", "{tmp}/m2"], 1,
     ["lolla", "did you mean 'lola'"]),
    ("compare-set-type", [*COMPARE, "--adapters", "opti", "--set", "opti.beta=abc", "--out", "{tmp}/m3"], 1,
     ["OptiConfig.beta", "float", "abc"]),
    ("compare-set-syntax", [*COMPARE, "--adapters", "opti", "--set", "beta=1", "--out", "{tmp}/m4"], 1,
     ["ADAPTER.KEY=VALUE"]),
    ("compare-set-budget", [*COMPARE, "--adapters", "opti", "--set", "opti.episodes=3", "--out", "{tmp}/m5"], 1,
     ["unequal budgets"]),
    ("compare-seeds", [*COMPARE, "--adapters", "opti", "--seeds", "a,b", "--out", "{tmp}/m6"], 2, ["--seeds"]),
    ("compare-seeds-0", [*COMPARE, "--adapters", "opti", "--seeds", "0", "--out", "{tmp}/m7"], 1, ["seeds"]),
    ("compare-oracle", [*COMPARE, "--adapters", "opti", "--oracle", "run", "--out", "{tmp}/m8"], 2,
     ["--oracle", "TASK=VALUE"]),
    ("compare-task-twice", [*COMPARE[:4], "run,run", "--adapters", "opti", "--out", "{tmp}/m9"], 1,
     ["twice"]),
    ("compare-foreign-folder", [*COMPARE, "--adapters", "opti", "--out", "{mine}"], 1,
     ["not a bfm_gym comparison folder"]),
    ("compare-workers-0", [*COMPARE, "--adapters", "opti", "--workers", "0", "--out", "{tmp}/m10"], 2,
     ["--workers"]),
    # video
    ("video-suffix", [*VIDEO, "--z-from-task", "--out", "{tmp}/v.txt"], 2, ["--out", ".gif or .mp4"]),
    ("video-out-is-folder", [*VIDEO, "--z-from-task", "--out", "{folder}"], 2, ["--out", "folder"]),
    ("video-no-z", [*VIDEO, "--out", "{tmp}/v.gif"], 2, ["--z", "--z-from-task"]),
    ("video-z-size", [*VIDEO, "--z", "1,2", "--out", "{tmp}/v.gif"], 1, ["2"]),
    ("video-steps-0", [*VIDEO, "--z-from-task", "--steps", "0", "--out", "{tmp}/v.gif"], 2, ["--steps"]),
    # tasks, plugins
    ("tasks-domain", ["tasks", "--domain", "walkr"], 1, ["walkr", "walker"]),
    ("plugins-hook", ["plugins", "--hook", "register_adapter"], 2, ["register_adapters"]),
]


def _fill(argv: list[str], paths: dict[str, str]) -> list[str]:
    return [a.format(**paths) for a in argv]


def invoke(argv: list[str], **env: str) -> tuple[int, str, BaseException | None]:
    result = CliRunner().invoke(cli, argv, env=env or None)
    return result.exit_code, result.stderr, result.exception


def assert_one_line_error(stderr: str, words: list[str]) -> str:
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, stderr
    for word in words:
        assert word in errors[0], f"{word!r} not in {errors[0]!r}"
    return errors[0]


@pytest.mark.parametrize(("argv", "code", "words"), [row[1:] for row in TABLE], ids=[row[0] for row in TABLE])
def test_bad_input_gets_one_line(paths: dict[str, str], monkeypatch: pytest.MonkeyPatch,
                                 argv: list[str], code: int, words: list[str]) -> None:
    monkeypatch.syspath_prepend(paths["rewards"])
    exit_code, stderr, exc = invoke(_fill(argv, paths))
    assert exit_code == code, (exit_code, stderr, exc)
    assert isinstance(exc, SystemExit), exc  # no exception escaped the command
    assert_one_line_error(stderr, words)


def test_user_folders_are_never_written_or_deleted(paths: dict[str, str]) -> None:
    """The rows above pointed --out (with --overwrite) at a folder of the user's: it is intact."""
    assert sorted(os.listdir(paths["mine"])) == ["notes.txt"]
    assert (Path(paths["mine"]) / "notes.txt").read_text() == "the user's own work"


def test_every_command_is_in_the_table() -> None:
    tested = {row[1][0] for row in TABLE}
    assert set(cli.commands) <= tested, f"commands without bad-input rows: {set(cli.commands) - tested}"


def test_rejected_adapt_writes_nothing(paths: dict[str, str]) -> None:
    """``adapt --episodes 0`` used to exit 0 naming a records file it never wrote."""
    out = Path(paths["tmp"]) / "never"
    code, _, _ = invoke(_fill([*ADAPT, "--episodes", "0", "--out", str(out)], paths))
    assert code == 2 and not out.exists()
    code, _, _ = invoke(_fill([*ADAPT, "--set", "beta=abc", "--out", str(out)], paths))
    assert code == 1 and not out.exists()


def test_damaged_run_folder_names_the_file(paths: dict[str, str], tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(paths["run"], run)
    argv = [*ADAPT, "--adapter", "zero-shot", "--episodes", "2", "--out", str(run)]
    (run / "records.jsonl").write_text("")  # rows deleted by hand: the state is one episode ahead
    code, stderr, _ = invoke(argv)
    assert code == 1
    assert_one_line_error(stderr, ["records.jsonl", "state.npz", "edited"])
    (run / "records.jsonl").write_text('{"episode": 0, "ret')
    code, stderr, _ = invoke(argv)
    assert code == 1
    assert_one_line_error(stderr, ["records.jsonl", "damaged", str(run)])
    (run / "run.json").write_text("[1, 2")
    code, stderr, _ = invoke(argv)
    assert code == 1
    assert_one_line_error(stderr, ["run.json", "damaged"])


def test_verbose_and_env_var_show_the_traceback(paths: dict[str, str]) -> None:
    argv = _fill([*ADAPT, "--adapter", "optii", "--out", "{tmp}/tb"], paths)
    result = CliRunner().invoke(cli, ["-v", *argv])
    assert result.exit_code == 1 and isinstance(result.exception, ValueError)
    assert "optii" in str(result.exception)
    result = CliRunner().invoke(cli, argv, env={"BFM_GYM_TRACEBACK": "1"})
    assert isinstance(result.exception, ValueError)


def test_unexpected_errors_are_one_line_with_exit_70() -> None:
    """A bug (not a user error) in any command, a plugin's included, is one line too."""
    group = BfmGroup("g")

    @group.command()
    def broken() -> None:
        {}["missing"]  # a KeyError: a bug, not a user mistake

    result = CliRunner().invoke(group, ["broken"])
    assert result.exit_code == 70
    line = assert_one_line_error(result.stderr, ["'missing'", "KeyError", "BFM_GYM_TRACEBACK=1"])
    assert "unexpected" in line


def test_ctrl_c_gives_the_resume_hint_and_keeps_the_episodes(tmp_path: Path) -> None:
    """A real SIGINT during ``adapt`` (after its first episode) ends with the resume hint, not
    click's ``Aborted!``; rerunning the same command continues from the kept episodes. (4000
    episodes, so that a loaded machine that runs the interrupting thread late still
    interrupts: with 400, one CI run finished them all first.)"""
    if sys.platform == "win32":  # pragma: no cover
        pytest.skip("SIGINT to self")
    out = tmp_path / "run"
    argv = ["adapt", "--model", "walker", "--task", "run", "--adapter", "zero-shot", "--episodes", "4000",
            "--max-episode-steps", "5", "--zero-shot-episodes", "0", "--no-progress", "--out", str(out)]

    def interrupt() -> None:
        deadline = time.monotonic() + 120
        while not (out / "state.npz").is_file() and time.monotonic() < deadline:
            time.sleep(0.01)
        os.kill(os.getpid(), signal.SIGINT)

    # Python's own SIGINT handler, whatever an earlier test in this worker process installed
    # (a pytest-xdist worker that ran Ray or multiprocessing code may ignore SIGINT)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    killer = threading.Thread(target=interrupt)
    killer.start()
    try:
        result = CliRunner().invoke(cli, argv)
    finally:
        killer.join()
        signal.signal(signal.SIGINT, previous)
    assert result.exit_code == 130, (result.stderr, result.exception)
    assert "rerun the same command to resume" in result.stderr and "Aborted" not in result.stderr
    kept = len((out / "records.jsonl").read_text().splitlines())
    assert 1 <= kept < 4000
    argv[argv.index("4000")] = str(kept + 1)
    again = CliRunner().invoke(cli, argv)
    assert again.exit_code == 0, again.stderr
    rows = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    assert [r["episode"] for r in rows] == list(range(kept + 1))


def test_plugin_commands_run_under_the_same_handler() -> None:
    """A command a plugin adds with ``@cli.command()`` gets the one-line errors too."""
    group = BfmGroup("g")

    @group.command()
    @click.option("--n", type=int)
    def halve(n: int) -> None:
        raise ValueError(f"n must be even; got {n}")

    result = CliRunner().invoke(group, ["halve", "--n", "3"])
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, ["n must be even; got 3"])
