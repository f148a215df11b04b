"""What a run of :func:`~bfm_gym.experiments.adapt.adapt` is made of, shared by
``adapt``, ``compare`` and the run videos: the task spec written to ``run.json``, the
reset seeds of its training and evaluation episodes, the model's inference samples, and the
CPU kinds that ran its episodes.

A comparison (:mod:`bfm_gym.experiments.compare`) checks its grid with the same task
resolution and sample lookup as the ``adapt`` runs of its cells, so a grid that plans
also runs. Files are written atomically with :mod:`bfm_gym.utils.io`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["cpu_kinds", "episode_seed", "evaluation_seeds", "resolve_task"]


def resolve_task(domain: str, task: str | None, goal: Any) -> dict[str, Any]:
    """The task spec of a run: ``{"domain", "task", "goal"}`` with the canonical task name.

    Args:
        domain: The model's domain.
        task: Task name, with or without the domain prefix (None with ``goal``).
        goal: Goal position (``point_mass_maze``), or None.

    Returns:
        ``{"domain": domain, "task": name, "goal": None}``, or ``task=None`` and the goal
        as a list of floats.

    Raises:
        ValueError: Neither a task nor a goal, or an unknown task (the message lists the
            valid ones).
    """
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


def evaluation_seeds(seed: int, n: int) -> list[int]:
    """The reset seeds of the ``n`` fixed evaluation start states of a run seeded ``seed``.

    ``SeedSequence([seed, 0, 2, i])`` for ``i < n``: never a training episode's seed
    (:func:`episode_seed` puts ``k + 1 >= 1`` second). Every evaluation point of every
    adapter run with this ``seed``, and its zero-shot level, start from these states, so
    their returns are paired start by start (the first ``n`` of a longer list are the same).
    """
    return [int(np.random.SeedSequence([seed, 0, 2, i]).generate_state(1)[0]) for i in range(n)]


def zero_shot_z(bfm: Any, spec: dict, samples: Any) -> np.ndarray | None:
    """The zero-shot z inferred from the model's dataset labels
    (:func:`~bfm_gym.evaluation.zero_shot.task_z`, the z the ``zero-shot`` adapter holds, the
    level every adaptation curve is read against),
    or None (no samples, or no z for this task)."""
    from bfm_gym.evaluation.zero_shot import task_z

    if samples is None:
        return None
    try:
        return np.asarray(task_z(bfm, samples, spec.get("task"), goal=spec.get("goal")), dtype=np.float32)
    except ValueError:
        return None


def cpu_kinds(records: list[dict[str, Any]]) -> list[str]:
    """The machines (:func:`~bfm_gym.utils.machine.numerics_kind`: CPU kind and OpenBLAS
    kernels; the CPU kind alone in older records) that ran a run's episodes.

    Rollouts amplify the last bit of float32 arithmetic, which depends on the kernels the CPU
    runs: the same seed's evaluation start states can give other returns on another machine
    (walker stand / walk, seed 0, one avx512_bf16 VM: 699 / 562, and 712 / 408 with OpenBLAS
    forced onto its AVX2 kernels), so paired comparisons hold within one machine. Records
    from before this field count as none."""
    return sorted({r["cpu_kind"] for r in records if r.get("cpu_kind")})
