"""``adapt()`` / ``bfm-gym adapt``: run one adapter on one task for N episodes.

Per episode the run records the return, cumulative env steps and reward labels
used, wall time and how far z moved; optionally every K episodes an evaluation
episode with the current z held fixed (deterministic policy). Output folder::

    records.jsonl, records.csv   one row per episode (rewritten atomically)
    state.npz                    adapter state after the last finished episode
    run.json                     the run's arguments (a rerun must match them)
    summary.json, curve.png      final table and learning curve
    tb/                          TensorBoard scalars

Rerunning the same command after an interrupt resumes after the last finished
episode; because each episode resets with ``episode_seed(seed, k)`` and the adapter's RNGs are
part of its state, the records equal those of an uninterrupted run.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bfm_gym.errors import UserError, check_count, check_out_dir, check_own_folder, unknown_name
from bfm_gym.utils.io import atomic_path, save_npz_atomic, write_json_atomic, write_text_atomic

__all__ = ["AdaptResult", "adapt"]


@dataclass
class AdaptResult:
    """Records (one dict per episode) and the summary table of an adaptation run."""

    records: list[dict[str, Any]]
    summary: dict[str, Any]
    out: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _resolve_task(domain: str, task: str | None, goal: Any) -> dict[str, Any]:
    from bfm_gym.envs import get_task, task_name

    if goal is not None:
        return {"domain": domain, "task": None, "goal": [float(v) for v in goal]}
    if task is None:
        raise ValueError("Give a task (or a goal for point_mass_maze).")
    name = task_name(domain, task)
    get_task(domain, name)  # raises with the valid names
    return {"domain": domain, "task": name, "goal": None}


def episode_seed(seed: int, k: int, evaluation: bool = False) -> int:
    """The reset seed of episode ``k`` of a run seeded ``seed``.

    Drawn from ``SeedSequence([seed, k, evaluation])`` so that runs with different seeds
    start from unrelated states (``seed + k`` would make seed 1 replay seed 0's starts
    shifted by one episode) and evaluation episodes never repeat training ones.
    """
    return int(np.random.SeedSequence([seed, k + 1, int(evaluation)]).generate_state(1)[0])


def _run_episode(env: Any, adapter: Any, seed: int, learn: bool) -> tuple[float, int, float]:
    """One episode; returns (return, env steps incl. lookahead steps, distance z moved)."""
    z0, sim0 = adapter.z.copy(), adapter.sim_steps
    total, steps = adapter.run_episode(env, seed, learn=learn)
    moved = float(np.linalg.norm(adapter.z - z0)) if learn else 0.0
    return total, steps + adapter.sim_steps - sim0, moved


def adapt(
    model: Any,
    task: str | None = None,
    adapter: str = "opti",
    *,
    episodes: int = 50,
    seed: int = 0,
    out: str | os.PathLike[str] | None = None,
    config: dict[str, Any] | None = None,
    goal: Any = None,
    z_hold: int | str | None = None,
    eval_every: int = 0,
    oracle: float | None = None,
    max_episode_steps: int | None = None,
    budget_steps: int | None = None,
    budget_labels: int | None = None,
    zero_shot_episodes: int = 5,
    progress: bool = True,
) -> AdaptResult:
    """Adapts ``adapter`` on ``task`` for ``episodes`` episodes and returns the records.

    Args:
        model: Shipped model name, model folder, or a loaded BFM.
        task: Task of the model's domain (``"run"`` or ``"walker-run"``).
        adapter: Registered adapter name (``bfm-gym plugins --hook register_adapters``).
        episodes: Training episodes.
        seed: Episode ``k`` resets with ``episode_seed(seed, k)``; seeds the adapter.
        out: Run folder (resumable); None keeps everything in memory.
        config: Adapter config fields.
        goal: ``(x, y)`` instead of a task (point_mass_maze).
        z_hold: Overrides the adapter's preferred hold.
        eval_every: Every K episodes, one evaluation episode with z fixed (0: none).
        oracle: A reference return; the summary reports episodes to reach 95 % of it.
        max_episode_steps: Cap episode length (for quick runs; default: full episodes).
        budget_steps: Stop once this many env steps (lookahead steps included) are spent,
            even before ``episodes``: equal-budget comparisons set it for every adapter.
        budget_labels: Stop once the adapter has used this many online reward labels
            (``labels_used``); ``bfm-gym compare`` sets the same cap for every adapter.
        zero_shot_episodes: Episodes averaged for the zero-shot level drawn on the curve and
            reported in the summary (their own reset seeds, shared by every adapter).
        progress: Show a progress bar.

    Raises:
        ValueError: Unknown adapter/task/model, invalid config, unmet adapter needs, or an
            ``out`` folder holding a run with other arguments.
    """
    import bfm_gym
    from bfm_gym.envs.dmc_env import DMCEnv
    from bfm_gym.plugins import load_plugins
    from bfm_gym.wrappers import LatentActionWrapper

    _check_arguments(model=model, task=task, oracle=oracle,
                     episodes=episodes, seed=seed, out=out, config=config, goal=goal, z_hold=z_hold,
                     eval_every=eval_every, max_episode_steps=max_episode_steps, budget_steps=budget_steps,
                     budget_labels=budget_labels, zero_shot_episodes=zero_shot_episodes)
    registry = load_plugins().adapters
    if adapter not in registry:
        raise unknown_name("adapter", adapter, registry,
                           fix="Plugins add more: `bfm-gym plugins --hook register_adapters`.")
    cls = registry[adapter][0]
    bfm = bfm_gym.load(model) if isinstance(model, (str, os.PathLike)) else model
    domain = bfm.metadata.domain
    if domain is None:
        raise ValueError("The model records no domain; adapt needs a model trained on a bfm_gym domain.")
    spec = _resolve_task(domain, task, goal)
    cfg = cls.config_class.from_dict(config)
    needs = cls.needs_for(cfg)
    hold = z_hold if z_hold is not None else (needs.z_hold or 1)

    def make_inner() -> Any:
        inner: Any = DMCEnv(domain, spec["task"], goal=spec["goal"])
        if max_episode_steps is not None:
            from gymnasium.wrappers import TimeLimit

            inner = TimeLimit(inner, max_episode_steps)
        return inner

    def make_latent_env() -> Any:
        return LatentActionWrapper(make_inner(), bfm, z_hold=hold, action_map="raw",
                                   record_state=needs.state_resets)

    def make_env() -> Any:
        return make_inner() if needs.acts == "env" else make_latent_env()

    env = make_env()
    kwargs: dict[str, Any] = {}
    if needs.state_resets:
        sim = make_inner()
        if not callable(getattr(sim.unwrapped, "set_state", None)):
            raise ValueError(f"Adapter {adapter!r} needs resets to simulator states; this env has none.")
        kwargs["sim"] = sim
    if zero_shot_episodes < 0:
        raise ValueError(f"zero_shot_episodes must be >= 0 (0: no zero-shot level); got {zero_shot_episodes}.")
    if budget_steps is not None and budget_steps < 1:
        raise ValueError(f"budget_steps must be a positive number of env steps; got {budget_steps}.")
    if budget_labels is not None and budget_labels < 1:
        raise ValueError(f"budget_labels must be a positive number of reward labels; got {budget_labels}.")
    samples = _samples(model)
    if "dataset" in needs.labels:
        if samples is None:
            raise ValueError(
                f"Adapter {adapter!r} needs reward labels of dataset samples, but the model "
                "ships no inference samples; pass a model folder made by `bfm-gym pretrain`."
            )
        kwargs["samples"] = samples
    agent = cls(bfm, spec, cfg, seed=seed, **kwargs)

    run_args = {"model": str(model) if isinstance(model, (str, os.PathLike)) else "<in-memory BFM>",
                "task": spec, "adapter": adapter, "config": cfg.to_dict(), "seed": seed,
                "z_hold": hold, "eval_every": eval_every, "max_episode_steps": max_episode_steps}
    if budget_steps is not None:
        run_args["budget_steps"] = budget_steps
    if budget_labels is not None:
        run_args["budget_labels"] = budget_labels
    records: list[dict[str, Any]] = []
    folder = Path(out) if out is not None else None
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        run_json = folder / "run.json"
        if run_json.is_file():
            _check_same_run(folder, _read_run_file(run_json, json.loads), json.loads(json.dumps(run_args)))
            if (folder / "state.npz").is_file():
                saved = _read_run_file(folder / "state.npz", _load_npz)
                done = int(saved.pop("__episodes__", -1))
                _read_run_file(folder / "state.npz", agent.load_state_dict, saved)
                records = _read_run_file(folder / "records.jsonl", _parse_jsonl)
                if done >= 0:  # a kill between the records and the state commit leaves extra rows
                    records = records[:done]
                _check_records(folder, records, done)
        else:
            write_json_atomic(run_json, run_args, newline=False)

    zero_shot = (_zero_shot_level(bfm, spec, samples, make_latent_env, seed, zero_shot_episodes)
                 if samples is not None and zero_shot_episodes > 0 else None)
    writer = _writer(folder, len(records))
    from tqdm.auto import trange

    env_steps = records[-1]["env_steps"] if records else 0
    start_wall = time.perf_counter() - (records[-1]["wall_s"] if records else 0.0)
    bar = trange(len(records), episodes, initial=len(records), total=episodes, disable=not progress,
                 desc=f"adapt {adapter} {spec['task'] or 'goal'}", unit="ep")
    for k in bar:
        if budget_steps is not None and env_steps >= budget_steps:
            break
        if budget_labels is not None and agent.labels_used >= budget_labels:
            break
        ret, steps, moved = _run_episode(env, agent, episode_seed(seed, k), learn=True)
        env_steps += steps
        row: dict[str, Any] = {"episode": k, "return": round(ret, 4), "env_steps": env_steps,
                               "sim_steps": agent.sim_steps, "labels_used": agent.labels_used,
                               "z_change": round(moved, 5),
                               "wall_s": round(time.perf_counter() - start_wall, 3)}
        if eval_every and (k + 1) % eval_every == 0:
            eval_ret, _, _ = _run_episode(make_env(), agent, episode_seed(seed, k, evaluation=True), learn=False)
            row["eval_return"] = round(eval_ret, 4)
        records.append(row)
        bar.set_postfix(ret=f"{ret:.1f}", dz=f"{moved:.2f}")
        if writer is not None:
            for key in ("return", "z_change", "eval_return"):
                if key in row:
                    writer.add_scalar(f"adapt/{key}", row[key], env_steps)
        if folder is not None:
            state = agent.state_dict()
            _save_records(folder, records)  # records first: state.npz is the commit point
            save_npz_atomic(folder / "state.npz",
                            {**state, "__episodes__": np.array(len(records), dtype=np.int64)})
    bar.close()
    if writer is not None:
        writer.close()
    summary = _summary(records, zero_shot, oracle)
    if folder is not None:
        write_json_atomic(folder / "summary.json", summary, newline=False)
        _plot(records, zero_shot, folder / "curve.png", f"{adapter} on {spec['task'] or spec['goal']}")
    return AdaptResult(records=records, summary=summary, out=folder)


def _check_arguments(*, model: Any, task: Any, oracle: Any, episodes: Any, seed: Any, out: Any, config: Any,
                     goal: Any, z_hold: Any, eval_every: Any, max_episode_steps: Any, budget_steps: Any,
                     budget_labels: Any, zero_shot_episodes: Any) -> None:
    """Refuses invalid counts, seeds, paths and shapes before anything runs or is written."""
    if not isinstance(model, (str, os.PathLike)) and not hasattr(model, "metadata"):
        raise UserError(f"model must be a shipped model name, a model folder or a loaded BFM "
                        f"(bfm_gym.load(...)); got {type(model).__name__} {model!r}.")
    if task is not None and not isinstance(task, str):
        raise UserError(f"task must be a task name such as 'run' or 'walker-run'; got {type(task).__name__} "
                        f"{task!r}.")
    if oracle is not None and (isinstance(oracle, bool) or not isinstance(oracle, (int, float))):
        raise UserError(f"oracle must be a reference return (a number); got {oracle!r}.")
    check_count("episodes", episodes)
    check_count("seed", seed, minimum=0)
    check_count("eval_every", eval_every, minimum=0)
    check_count("zero_shot_episodes", zero_shot_episodes, minimum=0)
    for name, value in (("max_episode_steps", max_episode_steps), ("budget_steps", budget_steps),
                        ("budget_labels", budget_labels)):
        check_count(name, value, allow_none=True)
    if out is not None:
        check_out_dir(out, "out")
        check_own_folder(out, ["run.json"], "adapt run folder",
                         consequence="adapt would write its records among its files")
    if config is not None and not isinstance(config, dict):
        raise UserError(f"config must be a dict of adapter config fields; got {type(config).__name__}.")
    if goal is not None:
        try:
            ok = len(goal) == 2 and all(np.isfinite(float(v)) for v in goal)
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise UserError(f"goal must be two finite numbers (x, y); got {goal!r}.")
    if z_hold is not None and z_hold != "episode" and (
            isinstance(z_hold, bool) or not isinstance(z_hold, int) or z_hold < 1):
        raise UserError(f"z_hold must be an integer >= 1 or 'episode'; got {z_hold!r}.")


def _check_same_run(folder: Path, old: dict[str, Any], new: dict[str, Any]) -> None:
    """Refuses to resume a run folder made with other arguments, naming those that differ."""
    if old == new:
        return
    diff = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    if "config" in diff and isinstance(old.get("config"), dict):
        diff.remove("config")
        oc, nc = old["config"], new["config"]
        diff += [f"config.{k}" for k in sorted(set(oc) | set(nc)) if oc.get(k) != nc.get(k)]

    def value(d: dict[str, Any], key: str) -> Any:
        for part in key.split("."):
            d = d.get(part) if isinstance(d, dict) else None  # type: ignore[assignment]
        return d

    shown = "; ".join(f"{k}: {value(old, k)!r} there, {value(new, k)!r} now" for k in diff[:4])
    raise UserError(f"{folder} holds a run with other arguments ({shown}); rerun with the same "
                    "arguments to resume, or choose another --out.")


def _check_records(folder: Path, records: list[Any], done: int) -> None:
    """Refuses to resume from records that do not match the saved state (a hand-edited folder):
    the resumed run would silently differ from an uninterrupted one."""
    episodes = [r.get("episode") if isinstance(r, dict) else None for r in records]
    if (done >= 0 and len(records) != done) or episodes != list(range(len(records))):
        raise UserError(f"cannot resume from {folder}: records.jsonl holds episodes {episodes[:3]}... "
                        f"({len(records)} rows) but state.npz was saved after {done} episodes; the folder "
                        f"was edited or mixed with another run. Delete {folder} to start over, or choose "
                        "another --out.")


def _load_npz(path: Path) -> dict[str, Any]:
    with np.load(path, allow_pickle=False) as st:
        return {k: st[k] for k in st.files}


def _parse_jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line]


def _read_run_file(path: Path, parse: Any, arg: Any = None) -> Any:
    """``parse(text or path or arg)`` with any failure reported as a damaged run-folder file."""
    try:
        if arg is not None:
            return parse(arg)
        return parse(path) if parse is _load_npz else parse(path.read_text())
    except Exception as exc:
        raise UserError(f"cannot resume from {path.parent}: {path.name} is damaged or from another "
                        f"version ({type(exc).__name__}: {exc}); delete {path.parent} to start over, "
                        "or choose another --out.") from exc


def _samples(model: Any) -> Any:
    """The model's shipped inference samples, or None (in-memory model, none shipped)."""
    from bfm_gym.evaluation.zero_shot import InferenceSet
    from bfm_gym.pretrained import resolve

    if not isinstance(model, (str, os.PathLike)):
        return None
    try:
        return InferenceSet.load(resolve(model))
    except FileNotFoundError:
        return None


def _zero_shot_level(bfm: Any, spec: dict, samples: Any, make_env: Any, seed: int,
                     episodes: int) -> float | None:
    """Mean return of the zero-shot z over ``episodes`` episodes with their own seeds
    (``SeedSequence([seed, 0, 2, i])``: never a training or evaluation episode's seed)."""
    from bfm_gym.adapters.zero_shot import ZeroShotAdapter

    try:
        ref = ZeroShotAdapter(bfm, spec, None, seed=seed, samples=samples)
    except ValueError:
        return None
    env = make_env()
    returns = [_run_episode(env, ref, int(np.random.SeedSequence([seed, 0, 2, i]).generate_state(1)[0]),
                            learn=False)[0] for i in range(episodes)]
    return round(float(np.mean(returns)), 4)


def _save_records(folder: Path, records: list[dict[str, Any]]) -> None:
    write_text_atomic(folder / "records.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    keys = sorted({k for r in records for k in r}, key=lambda k: list(records[0]).index(k) if k in records[0] else 99)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(records)
    write_text_atomic(folder / "records.csv", buf.getvalue())


def _writer(folder: Path | None, step: int) -> Any:
    if folder is None:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(folder / "tb"), purge_step=step or None)


def _summary(records: list[dict[str, Any]], zero_shot: float | None, oracle: float | None) -> dict[str, Any]:
    returns = [r["return"] for r in records]
    s: dict[str, Any] = {"episodes": len(records), "zero_shot": zero_shot,
                         "first": returns[0] if returns else None,
                         "best": max(returns) if returns else None,
                         "last": returns[-1] if returns else None,
                         "env_steps": records[-1]["env_steps"] if records else 0,
                         "labels_used": records[-1]["labels_used"] if records else 0}
    if zero_shot and returns:
        s["last_over_zero_shot_pct"] = round(100 * (returns[-1] - zero_shot) / abs(zero_shot), 2)
    if oracle is not None:
        s["oracle"] = oracle
        hit = [r["episode"] + 1 for r in records if r["return"] >= 0.95 * oracle]
        s["episodes_to_95pct_oracle"] = hit[0] if hit else None
    return s


def _plot(records: list[dict[str, Any]], zero_shot: float | None, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    ax.plot([r["episode"] + 1 for r in records], [r["return"] for r in records], marker="o", ms=3,
            label="training episodes")
    evals = [(r["episode"] + 1, r["eval_return"]) for r in records if "eval_return" in r]
    if evals:
        ax.plot(*zip(*evals, strict=True), marker="s", ls="--", label="evaluation (z fixed)")
    if zero_shot is not None:
        ax.axhline(zero_shot, color="gray", ls=":", label="zero-shot")
    ax.set_xlabel("episode")
    ax.set_ylabel("return")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110)
    plt.close(fig)
