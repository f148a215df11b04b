"""``adapt()`` / ``bfm-gym adapt``: run one adapter on one task for N episodes.

Per episode the run records the *training* return (the episode the adapter learned
from), cumulative env steps and reward labels used, wall time, how far z moved and z
itself. Output folder::

    records.jsonl, records.csv   one row per episode (rewritten atomically)
    state.npz                    adapter state after the last finished episode
    run.json                     the run's arguments (a rerun must match them)
    summary.json, curve.png      final table and learning curve
    policy.gif                   with ``video_every``: the policy at chosen points, side by side
    tb/                          TensorBoard scalars

**Paired evaluation.** Training returns mix what z learned with where the episode
started (in the maze the start room decides most of the return) and with the adapter's
exploration. An *evaluation point* (``eval_every``, ``eval_steps``) instead plays
``eval_episodes`` episodes from a fixed set of start states, the reset seeds
:func:`evaluation_seeds` ``(seed, n)``, with z frozen at the adapter's current estimate
and the deterministic policy; nothing is learned and no label is used. The zero-shot
level is measured on the same start states, and so is every other adapter run with the
same ``seed``: differences between them are paired start by start. The reset
observations of every evaluation episode are checked against the fixed start states, so
an adapter whose ``run_episode`` ignored the seed fails loudly. Evaluation episodes are
**not** counted in ``env_steps``, ``labels_used`` or the budgets (``budget_steps``,
``budget_labels``); the summary reports how many env steps they took.

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
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bfm_gym.errors import UserError, check_count, check_out_dir, check_own_folder, unknown_name
from bfm_gym.experiments.run_folder import (
    cpu_kinds,
    episode_seed,
    evaluation_seeds,
    resolve_task,
    zero_shot_z,
)
from bfm_gym.utils.io import save_npz_atomic, write_json_atomic, write_text_atomic
from bfm_gym.utils.machine import numerics_kind

__all__ = ["AdaptResult", "adapt"]


@dataclass
class AdaptResult:
    """Records (one dict per episode) and the summary table of an adaptation run."""

    records: list[dict[str, Any]]
    summary: dict[str, Any]
    out: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _start_recorder(env: Any) -> Any:
    """``env`` wrapped so that the observation of every reset is kept in ``.starts``."""
    import gymnasium as gym

    class StartRecorder(gym.Wrapper):
        def __init__(self, inner: Any) -> None:
            super().__init__(inner)
            self.starts: list[np.ndarray] = []

        def reset(self, **kwargs: Any) -> Any:
            obs, info = self.env.reset(**kwargs)
            self.starts.append(np.array(obs, dtype=np.float64, copy=True))
            return obs, info

    return StartRecorder(env)


def _evaluate(env: Any, agent: Any, seeds: list[int], starts: list[np.ndarray],
              who: str) -> tuple[list[float], int]:
    """One episode per fixed start state with z frozen: the adapter's
    ``run_episode(learn=False)``, or, when ``agent`` is a z, that z held by
    :func:`~bfm_gym.evaluation.rollout.play_episode`.

    Returns the returns and the env steps spent; raises when an episode did not begin at
    its start state (the adapter's ``run_episode`` ignored the reset seed).
    """
    from bfm_gym.evaluation.rollout import play_episode

    env.starts.clear()
    returns, steps = [], 0
    for s in seeds:
        if isinstance(agent, np.ndarray):
            ret, n = play_episode(env, s, lambda obs, z=agent: z)
        else:
            ret, n = agent.run_episode(env, s, learn=False)
        returns.append(float(ret))
        steps += int(n)
    seen = env.starts
    if len(seen) != len(seeds) or not all(np.array_equal(a, b) for a, b in zip(seen, starts, strict=False)):
        raise ValueError(
            f"{who}: its evaluation episodes did not start from the fixed start states, so they "
            "cannot be paired with the other runs; its run_episode(env, seed, learn=False) must "
            "call env.reset(seed=seed) once per episode."
        )
    return returns, steps


def _spread(returns: list[float]) -> dict[str, Any]:
    """Mean, std across start states (ddof=1; 0 for one) and the per-start returns, rounded."""
    r = np.asarray(returns, dtype=np.float64)
    std = float(r.std(ddof=1)) if r.size > 1 else 0.0
    return {"mean": round(float(r.mean()), 4), "std": round(std, 4), "returns": [round(float(x), 4) for x in r]}


def _eval_due(k: int, episodes: int, every: int, thresholds: list[int], env_steps: int, cost: int,
              last: bool) -> bool:
    """Whether episode ``k`` (0-based) is followed by an evaluation point.

    Every ``every`` episodes; after the run's last episode; and before a budget
    ``T in thresholds`` that the next episode would cross if it cost as much as this one
    (``env_steps <= T < env_steps + cost``), so a comparison scored at ``T`` finds a point
    within it. Adapters whose episodes cost a varying number of steps (lookahead) can miss
    one; the score then uses their previous point, which is also within the budget.
    """
    if last or (every and (k + 1) % every == 0):
        return True
    return any(env_steps <= t < env_steps + cost for t in thresholds)


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
    eval_episodes: int = 5,
    eval_steps: Sequence[int] | None = None,
    video_every: int = 0,
    video_steps: int = 300,
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
        eval_every: Every K episodes, an evaluation point: ``eval_episodes`` episodes from
            the fixed start states with z frozen (0: none). With evaluation on, the run's
            last episode is always followed by one.
        oracle: A reference return; the summary reports episodes to reach 95 % of it.
        max_episode_steps: Cap episode length (for quick runs; default: full episodes).
        budget_steps: Stop once this many env steps (lookahead steps included) are spent,
            even before ``episodes``: equal-budget comparisons set it for every adapter.
        budget_labels: Stop once the adapter has used this many online reward labels
            (``labels_used``); ``bfm-gym compare`` sets the same cap for every adapter.
        zero_shot_episodes: Episodes averaged for the zero-shot level drawn on the curve and
            reported in the summary: the first fixed evaluation start states, so it is paired
            with the evaluation points (use the same number as ``eval_episodes``).
        eval_episodes: Fixed start states (:func:`evaluation_seeds`) per evaluation point.
        eval_steps: Env-step budgets before which an evaluation point is also taken
            (``bfm-gym compare`` passes its checkpoints), see :func:`_eval_due`.
        video_every: Render the policy (frozen z, from the first evaluation start state)
            after every K episodes, beside the zero-shot policy and the final one, into
            ``out/policy.gif`` (0: none; needs ``out``, a task and a latent adapter).
        video_steps: Env steps rendered per panel (capped by ``max_episode_steps``).
        progress: Show a progress bar.

    Raises:
        ValueError: Unknown adapter/task/model, invalid config, unmet adapter needs, or an
            ``out`` folder holding a run with other arguments.
    """
    import bfm_gym
    from bfm_gym.envs.gym_env import env_info_of, make_task_env
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
    spec = resolve_task(domain, task, goal)
    cfg = cls.config_class.from_dict(config)
    needs = cls.needs_for(cfg)
    hold = z_hold if z_hold is not None else (needs.z_hold or 1)

    def make_inner() -> Any:
        inner: Any = make_task_env(domain, spec["task"], goal=spec["goal"],
                                   env_info=env_info_of(bfm))
        if max_episode_steps is not None:
            from gymnasium.wrappers import TimeLimit

            inner = TimeLimit(inner, max_episode_steps)
        return inner

    def make_latent_env() -> Any:
        return LatentActionWrapper(make_inner(), bfm, z_hold=hold, action_map="raw",
                                   record_state=needs.state_resets)

    def make_env() -> Any:
        return make_inner() if needs.acts == "env" else make_latent_env()

    kwargs: dict[str, Any] = {}
    if needs.state_resets:  # checked before the env is built (it would record states)
        sim = make_inner()
        if not callable(getattr(sim.unwrapped, "set_state", None)):
            raise ValueError(
                f"Adapter {adapter!r} needs resets to simulator states; {domain} offers none "
                "(bfm_gym restores the state of its dm_control domains and of Gymnasium MuJoCo "
                "envs). Use an adapter without state resets (zero-shot, opti, rela).")
        kwargs["sim"] = sim
    env = make_env()
    if zero_shot_episodes < 0:
        raise ValueError(f"zero_shot_episodes must be >= 0 (0: no zero-shot level); got {zero_shot_episodes}.")
    if budget_steps is not None and budget_steps < 1:
        raise ValueError(f"budget_steps must be a positive number of env steps; got {budget_steps}.")
    if budget_labels is not None and budget_labels < 1:
        raise ValueError(f"budget_labels must be a positive number of reward labels; got {budget_labels}.")
    thresholds = sorted({int(t) for t in (eval_steps or ())})
    _check_evaluation(eval_every, eval_episodes, thresholds, video_every, video_steps)
    if video_every:
        if out is None:
            raise ValueError("video_every writes OUT/policy.gif: give out (--out).")
        if spec["task"] is None:
            raise ValueError("video_every renders named tasks only; give a task instead of a goal.")
        if needs.acts != "latent":
            raise ValueError(f"video_every renders the policy of a latent z; adapter {adapter!r} fine-tunes "
                             "the network weights instead (use eval_every to score it).")
    samples = bfm.samples  # the model folder's inference samples (None: it ships none)
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
    evaluating = eval_episodes > 0 and bool(eval_every or thresholds)
    if evaluating:  # absent when off, so folders of runs without evaluation still resume
        run_args["eval_episodes"] = eval_episodes
        if thresholds:
            run_args["eval_steps"] = thresholds
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

    # the fixed start states: reset observations of the evaluation seeds, checked at every use
    n_starts = max(zero_shot_episodes, eval_episodes if evaluating else 0)
    seeds = evaluation_seeds(seed, n_starts)
    eval_env = _start_recorder(make_env()) if evaluating else None
    starts = [np.array(make_inner().reset(seed=s)[0], dtype=np.float64) for s in seeds]
    zero_shot = (_zero_shot_level(bfm, spec, samples, make_latent_env, seeds[:zero_shot_episodes], starts)
                 if samples is not None and zero_shot_episodes > 0 else None)
    writer = _writer(folder, len(records))
    from tqdm.auto import trange

    env_steps = records[-1]["env_steps"] if records else 0
    start_wall = time.perf_counter() - (records[-1]["wall_s"] if records else 0.0)
    machine = numerics_kind()  # per episode: a run resumed on another kind of CPU shows it
    bar = trange(len(records), episodes, initial=len(records), total=episodes, disable=not progress,
                 desc=f"adapt {adapter} {spec['task'] or 'goal'}", unit="ep")
    initial = None  # the policy before any env step, on the fixed start states (row 0 keeps it)
    if evaluating and not records:
        try:
            returns, used = _evaluate(eval_env, agent, seeds[:eval_episodes], starts, f"adapter {adapter!r}")
        except Exception as exc:  # e.g. an adapter that builds itself in its first training episode
            warnings.warn(f"adapter {adapter!r} could not be evaluated before its first episode "
                          f"({type(exc).__name__}: {exc}); a budget that its first episode overruns "
                          "has no score (NaN).", stacklevel=2)
        else:
            initial = {**_spread(returns), "env_steps": used}
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
                               "wall_s": round(time.perf_counter() - start_wall, 3), "cpu_kind": machine}
        last = (k + 1 >= episodes or (budget_steps is not None and env_steps >= budget_steps)
                or (budget_labels is not None and agent.labels_used >= budget_labels))
        if evaluating and _eval_due(k, episodes, eval_every, thresholds, env_steps, steps, last):
            returns, used = _evaluate(eval_env, agent, seeds[:eval_episodes], starts, f"adapter {adapter!r}")
            spread = _spread(returns)
            row.update({"eval_return": spread["mean"], "eval_std": spread["std"],
                        "eval_returns": spread["returns"], "eval_env_steps": used})
        if k == 0 and initial is not None:
            row.update({"initial_eval_return": initial["mean"], "initial_eval_returns": initial["returns"],
                        "initial_eval_env_steps": initial["env_steps"]})
        if needs.acts == "latent":  # the estimate evaluation holds fixed (and the video renders)
            row["z"] = [round(float(v), 6) for v in agent.eval_z()]
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
    if evaluating:
        summary["evaluation"] = {
            "episodes_per_point": eval_episodes, "every": eval_every, "before_budgets": thresholds,
            "reset_seeds": seeds[:eval_episodes],
            "initial_obs": [[round(float(v), 6) for v in o] for o in starts[:eval_episodes]],
            "policy": "z frozen at the adapter's estimate after the episode, deterministic policy",
            "counted_in_budget": False,
            "env_steps": sum(r.get("eval_env_steps", 0) + r.get("initial_eval_env_steps", 0) for r in records),
        }
    if folder is not None:
        title = f"{adapter} on {spec['task'] or spec['goal']}, seed {seed}"
        _plot(records, zero_shot, folder / "curve.png", title)
        if video_every:
            from bfm_gym.experiments.run_video import policy_panels, write_panels

            length = min(max_episode_steps or video_steps, video_steps)
            panels = policy_panels(records, video_every, zero_shot_z(bfm, spec, samples))
            summary["video"] = write_panels(bfm, spec["task"], panels, folder / "policy.gif",
                                            seed=seeds[0] if seeds else evaluation_seeds(seed, 1)[0],
                                            steps=length)
        write_json_atomic(folder / "summary.json", summary, newline=False)
    return AdaptResult(records=records, summary=summary, out=folder)


def _check_evaluation(eval_every: int, eval_episodes: int, thresholds: list[int], video_every: int,
                      video_steps: int) -> None:
    """One-line errors for the evaluation and video options."""
    for name, value in (("eval_every", eval_every), ("eval_episodes", eval_episodes),
                        ("video_every", video_every)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be an integer >= 0 (0: off); got {value!r}.")
    if thresholds and thresholds[0] < 1:
        raise ValueError(f"eval_steps are env-step budgets >= 1; got {thresholds}.")
    if video_steps < 1:
        raise ValueError(f"video_steps must be >= 1; got {video_steps}.")


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


def _zero_shot_level(bfm: Any, spec: dict, samples: Any, make_env: Any, seeds: list[int],
                     starts: list[np.ndarray]) -> dict[str, Any] | None:
    """The zero-shot z's returns from the fixed start states ``seeds`` (see
    :func:`evaluation_seeds`): ``{"mean", "std", "returns"}``, or None without a zero-shot z."""
    z = zero_shot_z(bfm, spec, samples)
    if z is None:
        return None
    returns, _ = _evaluate(_start_recorder(make_env()), z, seeds, starts[: len(seeds)], "zero-shot level")
    return _spread(returns)


def _save_records(folder: Path, records: list[dict[str, Any]]) -> None:
    write_text_atomic(folder / "records.jsonl", "".join(json.dumps(r) + "\n" for r in records))
    keys = sorted({k for r in records for k in r} - {"z"},  # z: records.jsonl only
                  key=lambda k: list(records[0]).index(k) if k in records[0] else 99)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
    w.writeheader()
    w.writerows(records)
    write_text_atomic(folder / "records.csv", buf.getvalue())


def _writer(folder: Path | None, step: int) -> Any:
    if folder is None:
        return None
    from torch.utils.tensorboard import SummaryWriter

    return SummaryWriter(str(folder / "tb"), purge_step=step or None)


def _summary(records: list[dict[str, Any]], zero_shot: dict[str, Any] | None,
             oracle: float | None) -> dict[str, Any]:
    """The summary table: zero-shot level, evaluation points (paired) and training returns.

    ``eval_*``: evaluation points (mean over the fixed start states, their std);
    ``eval_last_vs_zero_shot``: the last point minus the zero-shot level start by start;
    ``unlearning``: how far the evaluation points fall below the zero-shot level and the
    env steps until they are back at it (:func:`~bfm_gym.experiments.compare.unlearning.unlearning`).
    ``train_*``: the returns of the episodes the adapter learned from (not paired: each
    starts from its own state and includes the adapter's exploration).
    """
    returns = [r["return"] for r in records]
    level = zero_shot["mean"] if zero_shot else None
    s: dict[str, Any] = {"episodes": len(records), "cpu_kinds": cpu_kinds(records), "zero_shot": level,
                         "zero_shot_std": zero_shot["std"] if zero_shot else None,
                         "zero_shot_returns": zero_shot["returns"] if zero_shot else None}
    evals = [r for r in records if "eval_return" in r]
    if records and "initial_eval_return" in records[0]:
        s["eval_initial"] = records[0]["initial_eval_return"]
    if evals:
        s.update({"eval_points": len(evals), "eval_first": evals[0]["eval_return"],
                  "eval_best": max(r["eval_return"] for r in evals), "eval_last": evals[-1]["eval_return"],
                  "eval_last_std": evals[-1]["eval_std"], "eval_last_episode": evals[-1]["episode"] + 1})
        if level:
            s["eval_last_over_zero_shot_pct"] = round(100 * (evals[-1]["eval_return"] - level) / abs(level), 2)
        if zero_shot:
            from bfm_gym.experiments.compare.unlearning import unlearning

            # drop below the zero-shot level and recovery (bfm_gym.experiments.compare.unlearning)
            s["unlearning"] = unlearning([(r["env_steps"], r["eval_return"]) for r in evals], level)
            n = min(len(zero_shot["returns"]), len(evals[-1]["eval_returns"]))
            diff = np.subtract(evals[-1]["eval_returns"][:n], zero_shot["returns"][:n])
            s["eval_last_vs_zero_shot"] = {
                "start_states": n, "mean_difference": round(float(diff.mean()), 4),
                "std_difference": round(float(diff.std(ddof=1)) if n > 1 else 0.0, 4),
                "better": int((diff > 0).sum()), "worse": int((diff < 0).sum())}
    s.update({"train_first": returns[0] if returns else None,
              "train_best": max(returns) if returns else None,
              "train_last": returns[-1] if returns else None})
    if level and returns:
        s["train_last_over_zero_shot_pct"] = round(100 * (returns[-1] - level) / abs(level), 2)
    s.update({"env_steps": records[-1]["env_steps"] if records else 0,
              "labels_used": records[-1]["labels_used"] if records else 0})
    if oracle is not None:
        s["oracle"] = oracle
        key = "eval_return" if evals else "return"
        hit = [r["episode"] + 1 for r in (evals or records) if r[key] >= 0.95 * oracle]
        s["episodes_to_95pct_oracle"] = hit[0] if hit else None
        s["episodes_to_95pct_oracle_from"] = "evaluation points" if evals else "training episodes"
    return s


def _plot(records: list[dict[str, Any]], zero_shot: dict[str, Any] | None, path: Path, title: str) -> None:
    """The learning curve a newcomer reads: evaluation points (z frozen, the same fixed start
    states every time; bold mean, a faint line per start state, a band of one std) against
    the zero-shot z on those states; training returns, which zig-zag with the start state,
    in light gray."""
    from matplotlib.ticker import MaxNLocator

    from bfm_gym.utils.plots import pyplot, save_figure

    fig, ax = pyplot().subplots(figsize=(8, 5))
    evals = [r for r in records if "eval_return" in r]
    ax.plot([r["episode"] + 1 for r in records], [r["return"] for r in records], marker=".", ms=5, lw=0.7,
            color="0.75", label="training episodes (each from its own start, exploring; not paired)", zorder=1)
    if zero_shot is not None:
        n = len(zero_shot["returns"])
        ax.axhline(zero_shot["mean"], color="tab:orange", ls="--", lw=1.8, zorder=2,
                   label=f"zero-shot z on the same {n} start states: mean {zero_shot['mean']:.4g}")
        ax.scatter(np.zeros(n), zero_shot["returns"], color="tab:orange", s=22, zorder=3)
    if evals:
        x = np.array([r["episode"] + 1 for r in evals])
        per_start = np.array([r["eval_returns"] for r in evals], dtype=float)
        if "initial_eval_returns" in records[0]:  # the adapter's own policy before any env step
            x = np.concatenate([[0], x])
            per_start = np.vstack([records[0]["initial_eval_returns"], per_start])
        mean = per_start.mean(axis=1)
        std = per_start.std(axis=1, ddof=1) if per_start.shape[1] > 1 else np.zeros_like(mean)
        for j in range(per_start.shape[1]):
            ax.plot(x, per_start[:, j], color="tab:blue", alpha=0.3, lw=0.9, zorder=2)
        ax.fill_between(x, mean - std, mean + std, color="tab:blue", alpha=0.12, lw=0, zorder=2)
        ax.plot(x, mean, color="tab:blue", marker="o", ms=6, lw=2.5, zorder=4,
                label=f"evaluation, z frozen: mean over {per_start.shape[1]} fixed start states "
                      f"(faint: each start; band: ±1 std); last {mean[-1]:.4g}")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlim(left=-0.5)
    ax.set_xlabel("training episodes finished (0: the zero-shot z)")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=1, frameon=False)
    save_figure(fig, path)
