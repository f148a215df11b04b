"""A third-party model family, installed through a real entry point (a ``.dist-info`` on
``PYTHONPATH``): ``bfm_gym.load`` dispatches to it on config.json's format, and ``eval``,
``adapt`` and the latent wrapper run on it. The family is a small, complete one written against
the public protocol only: fixed random tanh features phi, successor features phi / (1 - gamma),
a linear-tanh policy and least-squares inference."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_plugins import make_dist, run

TOY = '''
import dataclasses, json, math
from pathlib import Path

import numpy as np
import torch

from bfm_gym.models import ModelMetadata
from bfm_gym.models.registry import Family
from bfm_gym.plugins import hookimpl
from bfm_gym.models import ActRunner, FamilyConfig

FORMAT = "toy.linear"


def _np(x):
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, np.float32)


def _like(y, x):
    y = np.asarray(y, np.float32)
    return torch.as_tensor(y) if isinstance(x, torch.Tensor) else y


class ToyBFM:
    family = FORMAT

    def __init__(self, w, a, domain):
        self.w, self.a = w.astype(np.float32), a.astype(np.float32)
        self.metadata = ModelMetadata(domain=domain)
        self.source = None
        self.samples = None
        self.z_dim, self.obs_dim = w.shape[1], w.shape[0]
        self.action_dim = a.shape[1]
        self.gamma, self.ensemble = 0.9, 1
        self.device = torch.device("cpu")
        self.block_sizes = (self.z_dim,)

    def project(self, z):
        v = _np(z)
        return _like(math.sqrt(self.z_dim) * v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12), z)

    def sample_z(self, n, *, seed=None):
        return self.project(np.random.default_rng(seed).normal(size=(n, self.z_dim)))

    def act(self, obs, z, noise=False, *, seed=None, grad=False):
        o = _np(obs)
        zz = np.broadcast_to(_np(z), o.shape[:-1] + (self.z_dim,))
        return _like(np.tanh(np.concatenate([o, zz], -1) @ self.a), obs)

    def phi(self, obs):
        return _like(np.tanh(_np(obs) @ self.w), obs)

    def psi(self, obs, z, action=None, *, grad=False):
        return _like(_np(self.phi(obs))[None] / (1 - self.gamma), obs)

    def q(self, obs, action, z, *, reduce="mean", grad=False):
        qs = (_np(self.psi(obs, z)) * _np(z)).sum(-1)
        return _like(qs if reduce == "none" else qs[0], obs)

    def infer_z(self, next_obs, rewards, *, project=True):
        w = np.linalg.lstsq(_np(self.phi(next_obs)), _np(rewards).reshape(-1), rcond=None)[0]
        return _like(self.project(w) if project else w, next_obs)

    def goal_z(self, goal_obs, obs=None):
        return self.project(self.phi(goal_obs))

    def policy_runner(self, batch=1):
        return ActRunner(self, batch)

    def save(self, path):
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        (path / "config.json").write_text(json.dumps({"format": FORMAT, "domain": self.metadata.domain}))
        np.savez(path / "weights.npz", w=self.w, a=self.a)
        return path


def load(folder, device="cpu"):
    cfg = json.loads((Path(folder) / "config.json").read_text())
    with np.load(Path(folder) / "weights.npz", allow_pickle=False) as f:
        return ToyBFM(f["w"], f["a"], cfg["domain"])


def create(obs_dim, action_dim, *, domain="walker", size="tiny", seed=0):
    rng = np.random.default_rng(seed)
    z_dim = 6
    return ToyBFM(rng.normal(size=(obs_dim, z_dim)), 0.3 * rng.normal(size=(obs_dim + z_dim, action_dim)), domain)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ToyConfig(FamilyConfig):  # JSON round trip and --set parsing from the base
    z_dim: int = 6
    ridge: float = 1e-3

    @classmethod
    def preset(cls, domain, size):
        return cls(z_dim=6 if size == "tiny" else 16)


class ToyTrainer:
    """Hindsight behaviour cloning: random tanh features phi, and a linear policy fitted by
    ridge regression of atanh(action) on [obs, project(phi(next_obs))]."""

    config_class = ToyConfig

    @classmethod
    def replay_from(cls, transitions):
        return transitions.obs, transitions.action, transitions.next_obs

    def __init__(self, config, obs_dim, action_dim, device="auto", seed=0, *, metadata=None,
                 threads=None):
        self.config, self.seed, self.metadata = config, seed, metadata
        self.obs_dim, self.action_dim = obs_dim, action_dim

    def train(self, replay, num_updates, out_dir, *, eval_fn=None, eval_every=None, **_):
        obs, action, next_obs = replay
        rng = np.random.default_rng(self.seed)
        bfm = ToyBFM(rng.normal(size=(self.obs_dim, self.config.z_dim)),
                     np.zeros((self.obs_dim + self.config.z_dim, self.action_dim)), self.metadata.domain)
        x = np.concatenate([obs, bfm.project(bfm.phi(next_obs))], -1).astype(np.float64)
        y = np.arctanh(np.clip(action, -0.99, 0.99))
        bfm.a = np.linalg.solve(x.T @ x + self.config.ridge * np.eye(x.shape[1]), x.T @ y).astype(np.float32)
        bfm.save(Path(out_dir) / "model")
        history = {"updates": num_updates}
        if eval_fn is not None and eval_every:
            history["eval"] = dict(eval_fn(bfm))
        return history


@hookimpl
def register_families(register):
    register("toy", Family(format=FORMAT, load=load, create=create, trainer=ToyTrainer,
                           description="a toy family"))
'''


@pytest.fixture
def site(tmp_path: Path) -> Path:
    folder = tmp_path / "site"
    folder.mkdir()
    return folder


@pytest.fixture
def toy_model(tmp_path: Path) -> Path:
    """A toy-family model folder (point_mass_maze) with inference samples on the top-left target."""
    import importlib.util
    import sys

    from tiny_maze import write_tiny_maze_model

    spec = importlib.util.spec_from_loader("bfm_gym_toy_family", loader=None)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["bfm_gym_toy_family"] = module  # dataclasses look their module up while built
    exec(TOY, module.__dict__)  # the same source the installed plugin runs
    sys.modules.pop("bfm_gym_toy_family", None)
    folder = tmp_path / "toy"
    module.create(4, 2, domain="point_mass_maze").save(folder)
    samples = write_tiny_maze_model(tmp_path / "fb", [(-0.15, 0.15), (-0.15, 0.145)], steps=60)
    (folder / "inference_samples.safetensors").write_bytes(
        (samples / "inference_samples.safetensors").read_bytes())
    return folder


def test_register_families_hook_loads_a_plugin_family(site: Path, toy_model: Path) -> None:
    make_dist(site, "bfm-gym-toy", TOY)
    code = ("import bfm_gym, numpy as np\n"
            "from bfm_gym.models.protocol import BFM\n"
            "from bfm_gym.models.registry import families\n"
            f"bfm = bfm_gym.load({str(toy_model)!r})\n"
            "print(type(bfm).__name__, isinstance(bfm, BFM), bfm.family, sorted(families()))\n"
            "print(bfm.samples is not None, bfm.source is not None)\n")
    proc = run(site, code=code)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.split("\n")
    assert lines[0] == "ToyBFM True toy.linear ['fb', 'hilp', 'toy']"
    assert lines[1] == "True True"
    listed = run(site, "plugins", "--hook", "register_families")
    rows = {row["name"]: row for row in json.loads(listed.stdout)}
    assert rows["bfm-gym-toy"]["registered"]["families"] == ["toy"]
    assert rows["bfm_gym"]["registered"]["families"] == ["fb", "hilp"]


def test_eval_and_adapt_run_on_a_plugin_family(site: Path, toy_model: Path, tmp_path: Path) -> None:
    make_dist(site, "bfm-gym-toy", TOY)
    run_dir = tmp_path / "run"
    model, out = repr(str(toy_model)), repr(str(run_dir))
    code = (
        "from bfm_gym.cli.main import cli\n"
        f"cli.main(['eval', '--model', {model}, '--task', 'reach_top_left', '--episodes', '1'],\n"
        "         standalone_mode=False)\n"
        f"cli.main(['adapt', '--model', {model}, '--task', 'reach_top_left', '--adapter', 'zero-shot',\n"
        f"          '--episodes', '2', '--max-episode-steps', '30', '--out', {out}, '--no-progress'],\n"
        "         standalone_mode=False)\n"
        "print('both ran')\n"
    )
    proc = run(site, code=code)  # one process: the CLI's eval, then adapt, on the plugin's model
    assert proc.returncode == 0, proc.stderr
    assert "95% CI" in proc.stdout and proc.stdout.rstrip().endswith("both ran")
    records = [json.loads(x) for x in (run_dir / "records.jsonl").read_text().splitlines()]
    assert [r["episode"] for r in records] == [0, 1] and all(np.isfinite(r["return"]) for r in records)


def test_pretrain_trains_a_plugin_family(site: Path, tmp_path: Path) -> None:
    """`bfm-gym pretrain --family toy` finds the plugin's trainer through the registry: the model
    folder it writes loads as the plugin's family, with inference samples, and its evaluation
    during training ran on the domain's tasks."""
    from bfm_gym.data.collection import collect

    make_dist(site, "bfm-gym-toy", TOY)
    data = tmp_path / "maze"
    collect("point_mass_maze", data, agent="ou", episodes=2, seed=0, progress=False, coverage=False)
    out = tmp_path / "toy-model"
    proc = run(site, "pretrain", "--family", "toy", "--dataset", str(data), "--config", "tiny",
               "--set", "ridge=0.01", "--out", str(out), "--updates", "1", "--eval-every", "1",
               "--eval-episodes", "1", "--inference-samples", "200", "--threads", "1", "--no-progress")
    assert proc.returncode == 0, proc.stderr
    code = (f"import bfm_gym, json; bfm = bfm_gym.load({str(out)!r})\n"
            "print(type(bfm).__name__, bfm.family, bfm.z_dim, len(bfm.samples))\n"
            f"h = json.load(open({str(out / 'training' / 'history.json')!r}))\n"
            "print(sorted(h['eval']))\n")
    loaded = run(site, code=code)
    assert loaded.returncode == 0, loaded.stderr
    lines = loaded.stdout.split("\n")
    assert lines[0] == "ToyBFM toy.linear 6 200"
    assert "zero_shot/mean" in lines[1] and "zero_shot/reach_top_left" in lines[1]
    run_spec = json.loads((out / "training" / "run.json").read_text())["spec"]
    assert run_spec["family"] == "toy" and run_spec["config"] == {"z_dim": 6, "ridge": 0.01}
    wrong = run(site, "pretrain", "--family", "toys", "--dataset", str(data), "--out",
                str(tmp_path / "x"), "--no-progress")
    assert wrong.returncode != 0
    assert "No model family 'toys'. Did you mean 'toy'?" in wrong.stderr
    assert "can be pre-trained: fb, hilp, toy" in wrong.stderr and "Traceback" not in wrong.stderr


def test_a_family_without_trainer_cannot_be_pretrained(monkeypatch: pytest.MonkeyPatch) -> None:
    from bfm_gym.models import registry
    from bfm_gym.models.registry import Family, Trainer, trainer_for
    from bfm_gym.pretraining import make_config

    found = {**registry.families(), "frozen": Family(format="x.frozen", load="math:sqrt")}
    monkeypatch.setattr(registry, "families", lambda: found)
    with pytest.raises(ValueError, match=r"'frozen' registers no trainer.*can be pre-trained: fb, hilp"):
        make_config("walker", "tiny", family="frozen")
    assert trainer_for("hilp").config_class.__name__ == "HILPConfig"
    assert all(isinstance(trainer_for(name), Trainer) for name in ("fb", "hilp"))


def test_unknown_format_names_the_registered_families(tmp_path: Path) -> None:
    import bfm_gym
    from bfm_gym.models import CheckpointError

    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"format": "toy.linear"}))
    with pytest.raises(CheckpointError, match=r"not a registered model family \(known: bfm_gym.fb, bfm_gym.hilp\)"):
        bfm_gym.load(folder)
