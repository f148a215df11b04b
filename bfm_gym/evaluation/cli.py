"""What ``bfm-gym eval`` does, as a function (validation of names and goals included)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bfm_gym.evaluation.rollout import EvalResult


def _parse_goal(goal: str) -> tuple[float, float]:
    try:
        x, y = (float(v) for v in goal.split(","))
    except ValueError as exc:
        raise ValueError(f"--goal must be 'x,y' with two numbers; got {goal!r}.") from exc
    return x, y


def _load_reward(spec: str) -> Any:
    from bfm_gym.utils.imports import resolve_callable

    return resolve_callable(spec, what="--reward")


def run_eval(model: str, *, task: str | None = None, goal: str | None = None,
             reward: str | None = None, episodes: int = 10, seed: int = 0,
             dataset: Path | None = None) -> EvalResult:
    """Infers z for the task (or goal, or reward function) and runs ``episodes`` episodes."""
    from bfm_gym.envs import get_task, task_name
    from bfm_gym.evaluation.zero_shot import InferenceSet, evaluate_zero_shot
    from bfm_gym.pretrained import load, resolve

    if sum(x is not None for x in (task, goal, reward)) != 1:
        raise ValueError("Give exactly one of --task, --goal or --reward.")
    bfm = load(model)
    domain = bfm.metadata.domain
    if domain is None:
        raise ValueError(f"Model {model} records no domain; it cannot be evaluated on an env.")
    if dataset is not None:
        from bfm_gym.data import load_transitions

        samples = InferenceSet.from_transitions(load_transitions(dataset), seed=seed)
    else:
        samples = InferenceSet.load(resolve(model))
    if task is not None:
        name = task_name(domain, task)
        get_task(domain, name)  # clear error listing valid tasks
        return evaluate_zero_shot(bfm, domain, [name], samples, episodes=episodes, seed=seed)[name]
    if goal is not None:
        results = evaluate_zero_shot(bfm, domain, [], samples, episodes=episodes, seed=seed,
                                     goals=[_parse_goal(goal)])
        return next(iter(results.values()))
    fn = _load_reward(reward)  # type: ignore[arg-type]
    from bfm_gym.envs.tasks import Task

    custom = Task(domain=domain, name=getattr(fn, "__name__", "reward"), reward=fn)
    return evaluate_zero_shot(bfm, domain, [custom], samples, episodes=episodes, seed=seed)[custom.name]
