"""Wrap an existing environment so that an agent acts in a BFM's latent space.

    python examples/02_wrap_existing_env.py [--smoke] [--out runs/example02]

The wrapped env's action is a task latent z; the frozen BFM policy pi(a | s, z) turns it
into low-level actions for ``z_hold`` steps. Any agent (SB3, an adapter, your own loop) can
then search z instead of joint torques.

1. Get a walker BFM: the shipped "walker" model, or, when none is shipped, a tiny *untrained*
   one saved to OUT/model (enough to show the mechanics, not to walk).
2. Build dm_control's walker yourself with shimmy and wrap it. Shimmy exposes dm_control's
   observation dict as a gymnasium ``Dict`` space, and ``spaces.Dict`` sorts its keys, so
   gymnasium's ``FlattenObservation`` would concatenate ``height, orientations, velocity``.
   BFMs are trained on dm_control's *native* order (the order of ``task.get_observation``,
   what ``flat_observation=True`` gives): ``orientations, height, velocity``. Same size (24),
   different features, no error: ``DMCFlattenObservation`` flattens in the native order, and
   the wrapper refuses ``FlattenObservation`` over a dm_control env for this reason.
3. Wrap a bfm_gym env (native order already; supports reset-to-state).
4. Or skip the wrapping: ``gym.make("bfm_gym/walker-run-latent-v0", model=...)``.
5. Many envs at once: ``gym.make_vec`` on the latent id gives a vector env that evaluates the
   policy once per low-level step for all envs; ``workers=2`` steps half of the simulators in
   a forked worker process. The results equal separate wrappers', bit for bit.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from dm_control import suite
from shimmy.dm_control_compatibility import DmControlCompatibilityV0

import bfm_gym  # noqa: F401  (registers the bfm_gym ids)
from bfm_gym.models import BFM, FBConfig, FBModel, ModelMetadata
from bfm_gym.pretrained import shipped_models
from bfm_gym.wrappers import DMCFlattenObservation, LatentActionWrapper, register_latent_envs, wrap


def get_model(out: Path) -> str:
    """The shipped walker model, or a tiny untrained one saved under ``out``."""
    if "walker" in shipped_models():
        print("using the shipped 'walker' model")
        return "walker"
    print("no shipped 'walker' model: building a tiny UNTRAINED one (mechanics only)")
    torch.manual_seed(0)
    model = FBModel(FBConfig.preset("walker", "tiny"), obs_dim=24, action_dim=6)
    return str(BFM(model, ModelMetadata(domain="walker")).save(out / "model"))


def run(env: LatentActionWrapper, steps: int, seed: int = 0) -> dict:
    """A few latent steps with random latent actions; returns what happened."""
    env.action_space.seed(seed)
    env.reset(seed=seed)
    total, low_level = 0.0, 0
    for _ in range(steps):
        _, reward, terminated, truncated, info = env.step(env.action_space.sample())
        total += reward
        low_level += len(info["transitions"])
        if terminated or truncated:
            break
    return {"latent_steps": steps, "low_level_steps": low_level, "return": round(total, 3),
            "last_z_norm": round(float(np.linalg.norm(info["z"])), 4)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--smoke", action="store_true", help="tiny run (used by the tests)")
    parser.add_argument("--out", type=Path, default=Path("runs/example02"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    steps = 5 if args.smoke else 50
    model = get_model(args.out)
    report = {}

    # 2. a dm_control env built by hand, flattened in dm_control's native order
    raw = DmControlCompatibilityV0(suite.load("walker", "run", task_kwargs={"random": 0}))
    flat = DMCFlattenObservation(raw)
    print(f"shimmy Dict keys (sorted): {list(raw.observation_space.spaces)}")
    print(f"native order used:         {flat.keys}")
    env = LatentActionWrapper(flat, model, z_hold=10)
    print(f"latent action space {env.action_space}, observation space {env.observation_space}")
    report["shimmy_walker"] = run(env, steps)
    try:
        LatentActionWrapper(gym.wrappers.FlattenObservation(raw), model)
    except ValueError as err:
        print(f"FlattenObservation is refused: {str(err)[:90]}...")

    # 3. a bfm_gym env: same model, and reset-to-state works
    env = wrap(gym.make("bfm_gym/walker-run-v0"), model=model, z_hold=10)
    report["bfm_gym_walker"] = run(env, steps)
    env.reset(seed=1)
    state = env.unwrapped.get_state()
    a = env.z_to_action(env.model.sample_z(1, seed=0)[0])  # the action selecting that z
    first = env.step(a)[0]
    env.reset(options={"state": state})
    assert np.array_equal(env.step(a)[0], first), "reset to a state replays exactly"
    print(f"supports_state_reset={env.supports_state_reset}: replay from a saved state matches")

    # 4. the registered latent id
    register_latent_envs()  # bfm_gym registers them on import once wired into __init__
    env = gym.make("bfm_gym/walker-run-latent-v0", model=model, z_hold=10)
    report["latent_id"] = run(env, steps)

    # 5. a vector env of 4, half of the simulators in a worker process, against 4 wrappers
    vec = gym.make_vec("bfm_gym/walker-run-latent-v0", num_envs=4, model=model, z_hold=10,
                       workers=2)  # fmt: skip
    singles = [gym.make("bfm_gym/walker-run-latent-v0", model=model, z_hold=10) for _ in range(4)]
    obs, _ = vec.reset(seed=0)
    same = all(np.array_equal(obs[i], e.reset(seed=i)[0]) for i, e in enumerate(singles))
    latent = np.random.default_rng(0).uniform(-1, 1, (steps, 4, vec.single_action_space.shape[0]))
    for z in latent.astype(np.float32):
        obs, rewards, *_ = vec.step(z)
        outs = [e.step(z[i]) for i, e in enumerate(singles)]
        same = same and all(np.array_equal(obs[i], o[0]) and rewards[i] == o[1]
                            for i, o in enumerate(outs))  # fmt: skip
    vec.close()
    assert same, "the vector env gives the separate wrappers' observations and rewards"
    print("vector env (workers=2) equals 4 separate wrappers bit for bit")
    report["vector_env_equals_wrappers"] = same

    for name, row in report.items():
        print(f"{name:<16} {row}")
    # same simulator, same seed, same latent actions: the three routes give the same returns
    routes = [r for r in report.values() if isinstance(r, dict)]
    print("same return on all three routes:", len({r["return"] for r in routes}) == 1)
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out / 'report.json'}")


if __name__ == "__main__":
    main()
