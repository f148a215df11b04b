"""``bfm-gym eval``: the zero-shot return of a model on a task, a goal or a reward function.

:func:`run_eval` is the command as a function (validation of names and goals included).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from bfm_gym.cli.framework import COUNT, OUT_FILE, SEED, BfmCommand

if TYPE_CHECKING:
    from bfm_gym.evaluation.rollout import EvalResult

__all__ = ["eval_", "run_eval"]


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
    from bfm_gym.pretrained import load

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
        samples = bfm.samples
        if samples is None:
            raise ValueError(f"Model {model} ships no inference samples to infer z from; give "
                             "--dataset DATA (transitions of the model's domain) instead.")
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


@click.command(name="eval", cls=BfmCommand)
@click.option("--model", "model_name", required=True, help="Shipped model name or model folder.")
@click.option("--task", default=None, help="Task, as 'run' or 'walker-run'.")
@click.option("--goal", default=None, help="Goal position 'x,y' (point_mass_maze).")
@click.option("--reward", default=None, metavar="MODULE:FUNCTION",
              help="A reward fn(physics) -> float to evaluate instead of a shipped task.")
@click.option("--episodes", type=COUNT, default=10, show_default=True)
@click.option("--seed", type=SEED, default=0, show_default=True)
@click.option("--dataset", type=click.Path(path_type=Path), default=None,
              help="Infer z from this dataset instead of the model's shipped samples.")
@click.option("--json", "json_out", type=OUT_FILE, default=None,
              help="Write the result as JSON here.")
def eval_(model_name: str, task: str | None, goal: str | None, reward: str | None,
          episodes: int, seed: int, dataset: Path | None, json_out: Path | None) -> None:
    """Zero-shot return of a model on a task: mean with a 95% interval."""
    result = run_eval(model_name, task=task, goal=goal, reward=reward, episodes=episodes,
                      seed=seed, dataset=dataset)
    lo, hi = result.ci95
    click.echo(f"{result.task}: mean return {result.mean:.1f} (95% CI {lo:.1f} to {hi:.1f}) "
               f"over {episodes} episodes")
    if json_out is not None:
        from bfm_gym.utils.io import write_json_atomic

        json_out.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(json_out, result.to_dict(), sort_keys=True)
        click.echo(f"wrote {json_out}")
