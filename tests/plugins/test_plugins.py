"""Plugin discovery through real entry points (a plugin distribution put on the path)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bfm_gym.plugins import hookspecs

ROOT = Path(__file__).parents[2]

GOOD = '''
from bfm_gym.plugins import hookimpl

def crouch(physics):
    return float(physics.torso_height() < 0.6)

@hookimpl
def register_tasks(register):
    register("walker", "crouch", crouch, "torso below 0.6 m")

@hookimpl
def register_commands(cli):
    import click

    @cli.command()
    def hello():
        """Say hello from a plugin."""
        click.echo("hello from plugin")
'''

BROKEN_IMPORT = "raise ImportError('this plugin is broken on purpose')\n"

RAISING_HOOK = '''
from bfm_gym.plugins import hookimpl

@hookimpl
def register_tasks(register):
    raise RuntimeError("boom")
'''

DUPLICATE = '''
from bfm_gym.plugins import hookimpl

def other(physics):
    return 0.0

@hookimpl
def register_tasks(register):
    register("walker", "crouch", other, "same name as the good plugin")
'''

TYPO = '''
from bfm_gym.plugins import hookimpl

@hookimpl
def register_taskz(register):
    pass
'''


def make_dist(site: Path, name: str, module_source: str, version: str = "0.1.0") -> None:
    """Writes ``module.py`` plus a ``.dist-info`` with an entry point in group bfm_gym."""
    module = name.replace("-", "_")
    (site / f"{module}.py").write_text(textwrap.dedent(module_source))
    info = site / f"{module}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text(f"[bfm_gym]\n{name} = {module}\n")


def run(site: Path, *args: str, load: str | None = None, code: str | None = None,
        strict: bool = False) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("BFM_GYM_LOAD_PLUGINS", "BFM_GYM_STRICT_PLUGINS")}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(ROOT)])
    if load is not None:
        env["BFM_GYM_LOAD_PLUGINS"] = load
    if strict:
        env["BFM_GYM_STRICT_PLUGINS"] = "1"
    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", "bfm_gym.cli.main", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    site = tmp_path / "site"
    site.mkdir()
    return site


def test_hook_register_tasks_and_commands_from_installed_plugin(site: Path) -> None:
    make_dist(site, "bfm-gym-good", GOOD, version="1.2.3")
    proc = run(site, "plugins")
    assert proc.returncode == 0, proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    assert rows["bfm-gym-good"]["version"] == "1.2.3"
    assert rows["bfm-gym-good"]["registered"]["tasks"] == ["walker/crouch"]
    assert "register_commands" in rows["bfm-gym-good"]["hooks"]
    assert "walker/run" in rows["bfm_gym"]["registered"]["tasks"]  # built-ins use the same hook
    proc = run(site, "hello")
    assert proc.returncode == 0 and "hello from plugin" in proc.stdout
    proc = run(site, code="import gymnasium as gym, bfm_gym\n"
                          "env = gym.make('bfm_gym/walker-v0', task='crouch')\n"
                          "env.reset(seed=0); print('reward', env.step(env.action_space.sample())[1])")
    assert proc.returncode == 0, proc.stderr
    assert re.search(r"reward (0|1)\.0", proc.stdout)


def test_broken_plugins_are_reported_and_others_keep_working(site: Path) -> None:
    make_dist(site, "bfm-gym-good", GOOD)
    make_dist(site, "bfm-gym-broken", BROKEN_IMPORT)
    make_dist(site, "bfm-gym-raising", RAISING_HOOK)
    proc = run(site, "plugins")
    assert proc.returncode == 0, proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    assert "broken on purpose" in rows["bfm-gym-broken"]["errors"][0]
    assert "boom" in rows["bfm-gym-raising"]["errors"][0]
    assert rows["bfm-gym-good"]["registered"]["tasks"] == ["walker/crouch"]
    assert "disabled" in proc.stderr  # a warning names the failure
    strict = run(site, "plugins", strict=True)
    assert strict.returncode != 0 and "broken on purpose" in strict.stderr


COLLIDING = '''
from bfm_gym.plugins import hookimpl

@hookimpl
def register_adapters(register):
    from bfm_gym.adapters.zero_shot import ZeroShotAdapter

    class MyOpti(ZeroShotAdapter):
        name = "opti"

    class Mine(ZeroShotAdapter):
        name = "mine"

    register("opti", MyOpti)  # taken by the built-in plugin
    register("mine", Mine)
'''


def test_name_collisions_disable_only_the_later_entry(site: Path) -> None:
    """Two installed plugins register walker/crouch, a third re-registers the built-in adapter
    'opti': the later registrations are dropped with a warning naming both plugins, and
    everything else (bfm-gym plugins, the other adapters and tasks, gym.make) keeps working."""
    make_dist(site, "bfm-gym-good", GOOD)
    make_dist(site, "bfm-gym-dup", DUPLICATE)  # loads first: entry points load sorted by name
    make_dist(site, "bfm-gym-zzz", COLLIDING)
    proc = run(site, "plugins")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    assert "bfm-gym-dup" in rows["bfm-gym-good"]["errors"][0] and "walker/crouch" in rows["bfm-gym-good"]["errors"][0]
    assert "bfm_gym" in rows["bfm-gym-zzz"]["errors"][0] and "'opti'" in rows["bfm-gym-zzz"]["errors"][0]
    assert rows["bfm-gym-zzz"]["registered"]["adapters"] == ["mine"]
    warning = [line for line in proc.stderr.splitlines() if "walker/crouch" in line]
    assert len(warning) == 1 and "bfm-gym-good" in warning[0] and "bfm-gym-dup" in warning[0]
    check = run(site, code="import gymnasium as gym, bfm_gym\n"
                           "from bfm_gym.plugins import load_plugins\n"
                           "reg = load_plugins()\n"
                           "print(reg.adapters['opti'][1], reg.adapters['mine'][1], reg.adapters['cem'][1],\n"
                           "      reg.tasks[('walker', 'crouch')][1])\n"
                           "env = gym.make('bfm_gym/walker-run-v0'); env.reset(seed=0)\n"
                           "print('reward', env.step(env.action_space.sample())[1] >= 0)")
    assert check.returncode == 0, check.stderr
    assert check.stdout.split() == ["bfm_gym", "bfm-gym-zzz", "cem", "bfm-gym-dup", "reward", "True"]
    strict = run(site, code="from bfm_gym.plugins import PluginError, load_plugins\n"
                            "for _ in range(2):\n"
                            "    try:\n        load_plugins()\n"
                            "    except PluginError as e:\n"
                            "        print('PluginError', 'bfm-gym-good' in str(e) and 'bfm-gym-dup' in str(e))",
                 strict=True)
    assert strict.stdout.split() == ["PluginError", "True", "PluginError", "True"], strict.stderr
    strict_cli = run(site, "plugins", strict=True)
    assert strict_cli.returncode == 1 and "Traceback" not in strict_cli.stderr
    assert "bfm-gym-good" in strict_cli.stderr and "bfm-gym-dup" in strict_cli.stderr


def test_load_plugins_variable_selects_plugins(site: Path) -> None:
    make_dist(site, "bfm-gym-good", GOOD)
    make_dist(site, "bfm-gym-dup", DUPLICATE)
    only_good = json.loads(run(site, "plugins", load="bfm-gym-good").stdout)
    assert {row["name"] for row in only_good} == {"bfm_gym", "bfm-gym-good"}
    none = json.loads(run(site, "plugins", load="").stdout)
    assert {row["name"] for row in none} == {"bfm_gym"}


def test_unknown_hook_is_an_error(site: Path) -> None:
    make_dist(site, "bfm-gym-typo", TYPO)
    proc = run(site, "plugins")
    assert proc.returncode != 0 and "register_taskz" in proc.stderr


def test_tests_do_not_load_installed_plugins() -> None:
    from bfm_gym.plugins import plugin_infos

    assert [p.name for p in plugin_infos()] == ["bfm_gym"]


HOOKS = sorted(n for n in dir(hookspecs) if n.startswith("register_"))


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_in_contributing(hook: str) -> None:
    import inspect

    args = ", ".join(inspect.signature(getattr(hookspecs, hook)).parameters)
    text = (ROOT / "CONTRIBUTING.md").read_text()
    assert f"### {hook}({args})" in text, f"CONTRIBUTING.md lacks a '### {hook}({args})' section"


def test_every_hook_has_a_test() -> None:
    tested = {"register_tasks", "register_commands"}  # test_hook_register_tasks_and_commands...
    tested |= {"register_models"}  # test_register_models_hook below
    tested |= {"register_adapters"}  # test_register_adapters_hook below
    tested |= {"register_families"}  # test_family_plugin.py: test_register_families_hook_...
    tested |= {"register_domains", "register_agents"}  # test_register_domains_and_agents_hooks below
    assert set(HOOKS) == tested


MODELS = '''
from bfm_gym.plugins import hookimpl

@hookimpl
def register_models(register):
    register("my-model", "{path}")

@hookimpl
def register_adapters(register):
    class Noop:
        name = "noop"
    register("noop", Noop)
'''


def test_register_models_hook(site: Path, tmp_path: Path) -> None:
    from bfm_gym.models import BFM, FBConfig, FBModel, ModelMetadata

    folder = tmp_path / "model"
    BFM(FBModel(FBConfig.preset("point_mass_maze", "tiny"), obs_dim=4, action_dim=2),
        ModelMetadata(domain="point_mass_maze")).save(folder)
    make_dist(site, "bfm-gym-models", MODELS.replace("{path}", str(folder)))
    proc = run(site, code="import bfm_gym; print(bfm_gym.load('my-model'))")
    assert proc.returncode == 0, proc.stderr
    assert "point_mass_maze" in proc.stdout


def test_register_adapters_hook(site: Path) -> None:
    make_dist(site, "bfm-gym-models", MODELS.replace("{path}", "/nonexistent"))
    proc = run(site, code="from bfm_gym.plugins import load_plugins\n"
                          "print(load_plugins().adapters['noop'][1])")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "bfm-gym-models"


DOMAIN_AND_AGENT = '''
from bfm_gym.plugins import hookimpl

@hookimpl
def register_domains(register):
    from bfm_gym.envs import Domain

    def load(random):
        from dm_control import suite

        return suite.load("hopper", "hop", task_kwargs={"random": random})

    register("hopper", Domain("hopper", load, "planar one-legged hopper", tasks=("height",)))

@hookimpl
def register_agents(register):
    from bfm_gym.data.agents import RandomAgent

    class Lazy(RandomAgent):
        name = "lazy"

    register("lazy", Lazy)

@hookimpl
def register_tasks(register):
    register("hopper", "height", lambda physics: float(physics.named.data.xpos["torso", "z"]), "torso height")
'''


def test_register_domains_and_agents_hooks(site: Path) -> None:
    make_dist(site, "bfm-gym-hopper", DOMAIN_AND_AGENT)
    proc = run(site, "plugins", "--hook", "register_domains")
    assert proc.returncode == 0, proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    assert rows["bfm-gym-hopper"]["registered"] == {"domains": ["hopper"], "agents": ["lazy"],
                                                    "tasks": ["hopper/height"]}
    assert rows["bfm_gym"]["registered"]["domains"] == ["walker", "cheetah", "quadruped", "point_mass_maze"]
    assert rows["bfm_gym"]["registered"]["agents"] == ["random", "ou", "rnd", "stopgo"]
    proc = run(site, "tasks", "--domain", "hopper")
    assert proc.returncode == 0 and "hopper: planar one-legged hopper" in proc.stdout, proc.stderr
    proc = run(site, code="from bfm_gym.data.agents import AGENTS, make_agent\n"
                          "print(sorted(AGENTS), type(make_agent('lazy', 3, 2, 0)).__name__)")
    assert proc.returncode == 0 and "['lazy', 'ou', 'random', 'rnd', 'stopgo'] Lazy" in proc.stdout, proc.stderr


def test_plugin_walker_task_does_not_join_the_benchmark_set(site: Path) -> None:
    """A plugin's walker task is evaluable, but the walker benchmark (card, zero_shot.py) still
    averages stand/walk/run/flip against the walker floor."""
    make_dist(site, "bfm-gym-good", GOOD)
    code = ("from bfm_gym.envs import get_domain, list_tasks\n"
            "from bfm_gym.evaluation.report import FLOORS, benchmark_tasks\n"
            "print(list_tasks('walker'), get_domain('walker').tasks, benchmark_tasks('walker'), FLOORS['walker'])")
    proc = run(site, code=code)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["['crouch',", "'flip',", "'run',", "'stand',", "'walk']",
                                   "('stand',", "'walk',", "'run',", "'flip')",
                                   "['flip',", "'run',", "'stand',", "'walk']", "550.0"]


def test_register_model_from_code_joins_the_plugin_registry(tmp_path: Path) -> None:
    from bfm_gym.plugins import load_plugins
    from bfm_gym.pretrained import register_model, resolve, shipped_models

    (tmp_path / "config.json").write_text("{}")
    register_model("my-code-model", tmp_path)
    try:
        assert load_plugins().models["my-code-model"] == (tmp_path, "register_model")
        assert shipped_models()["my-code-model"] == tmp_path
        assert resolve("my-code-model") == tmp_path
    finally:
        del load_plugins().models["my-code-model"]


DOMAIN_PLUGIN = '''
import numpy as np

from bfm_gym.envs import CoverageAxis, Domain
from bfm_gym.plugins import hookimpl


def load(random):
    from dm_control import suite

    return suite.load("walker", "stand", task_kwargs={"random": random})


def stand(physics):
    return float(physics.torso_height() > 1.0)


@hookimpl
def register_domains(register):
    register("short_walker", Domain("short_walker", load, "walker on a stand task",
                                    tasks=("tall",), coverage=CoverageAxis("torso upright", lambda o: o[:, 0]),
                                    presets={"fb": {"gamma": 0.9}}))


@hookimpl
def register_tasks(register):
    register("short_walker", "tall", stand, "torso above 1 m")
'''


def test_plugin_domain_is_named_in_help_drives_coverage_and_pretrains(site: Path, tmp_path: Path) -> None:
    """A plugin's domain shows in ``collect --help`` (no list kept by hand), its coverage axis
    draws the coverage report of a dataset collected on it, and it pre-trains with its presets."""
    make_dist(site, "bfm-gym-shortwalker", DOMAIN_PLUGIN)
    proc = run(site, "collect", "--help")
    assert proc.returncode == 0, proc.stderr
    assert "short_walker" in " ".join(proc.stdout.split()) and "point_mass_maze" in proc.stdout
    out = tmp_path / "data"
    proc = run(site, "collect", "--domain", "short_walker", "--agent", "random", "--steps", "1000",
               "--out", str(out), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "coverage.json").read_text())
    assert set(report["tasks"]) == {"tall"}
    assert report["panel"]["quantity"] == "torso upright"
    # Its own presets (Domain.presets) reach pre-training.
    model = tmp_path / "model"
    proc = run(site, "pretrain", "--dataset", str(out), "--config", "tiny", "--updates", "10",
               "--eval-every", "0", "--out", str(model), "--no-progress", "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    config = json.loads((model / "config.json").read_text())
    assert config["model"]["config"]["gamma"] == 0.9 and config["domain"] == "short_walker"
