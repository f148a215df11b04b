"""Coverage report of a reward-free dataset.

For each task of the dataset's domain, every transition is relabelled from its
stored next-state and summed per episode: the best and mean episode return say
which behaviours the data contains (an FB model can hardly learn a behaviour no
episode comes near). A picture shows where the data went along the domain's coverage
axis (``Domain.coverage``: visited (x, y) for the maze, torso height for walker, forward
velocity for cheetah, uprightness for quadruped), or episode lengths for Gymnasium envs,
next to the per-task return distributions.
For a Gymnasium env the tasks are its own reward (``native``, as recorded) and the tasks
registered for its id (:mod:`bfm_gym.envs.gym_tasks`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bfm_gym.data.dataset import Transitions
from bfm_gym.utils.io import write_json_atomic



def _axis(domain: str) -> Any:
    """The domain's :class:`~bfm_gym.envs.domains.CoverageAxis`, or ``None`` (Gymnasium ids,
    domains without one)."""
    from bfm_gym.envs import DOMAINS

    entry = DOMAINS.get(domain)
    return None if entry is None else entry.coverage


def episode_returns(transitions: Transitions, rewards: np.ndarray) -> np.ndarray:
    """Sums per-step rewards into per-episode returns, ``(n_episodes,)``."""
    n = int(transitions.episode.max()) + 1
    return np.bincount(transitions.episode, weights=rewards, minlength=n)


def coverage_report(transitions: Transitions, out_dir: str | Path | None = None,
                    tasks: list[str] | None = None) -> dict[str, Any]:
    """Relabels every task and returns (and optionally saves) the coverage summary.

    Args:
        transitions: The dataset's transitions.
        out_dir: If given, writes ``coverage.json`` and ``coverage.png`` there.
        tasks: Task names (default: all tasks registered for the domain).

    Returns:
        ``{"tasks": {task: {"best_return", "mean_return", "median_return"}}, ...}``.
    """
    from bfm_gym.envs import list_tasks
    from bfm_gym.envs.relabel import Relabeler

    domain = transitions.domain
    tasks = tasks or [t for t in list_tasks(domain) if not t.startswith("test_")]
    unavailable: dict[str, str] = {}
    if transitions.env is None:
        per_step = Relabeler(domain).rewards_many(transitions.next_state, tasks)
    else:  # a Gymnasium env: native rewards, transition and simulator tasks
        from bfm_gym.envs.gym_tasks import label_rewards

        per_step = {}
        for task in tasks:
            try:
                per_step.update(label_rewards(domain, [task], transitions, transitions.env))
            except ValueError as exc:  # e.g. a simulator task on data without states
                unavailable[task] = str(exc)
    returns = {task: episode_returns(transitions, r) for task, r in per_step.items()}
    report: dict[str, Any] = {
        "domain": domain,
        "episodes": int(transitions.episode.max()) + 1,
        "steps": len(transitions),
        "episode_length": {
            "mean": round(float(np.bincount(transitions.episode).mean()), 1),
            "terminated_episodes": int(np.asarray(transitions.terminated).sum()),
        },
        "tasks": {
            t: {
                "best_return": round(float(r.max()), 2),
                "mean_return": round(float(r.mean()), 2),
                "median_return": round(float(np.median(r)), 2),
            }
            for t, r in returns.items()
        },
    }
    if unavailable:
        report["unavailable_tasks"] = unavailable
    axis = _axis(domain)
    values = None if axis is None else np.asarray(axis.values(transitions.next_obs))
    if axis is not None and values is not None:
        if values.ndim == 2:  # a position: the fraction of a 20 x 20 grid the data visited
            lo, hi = axis.extent or (float(values.min()), float(values.max()))
            hist, _, _ = np.histogram2d(values[:, 0], values[:, 1], bins=20, range=[[lo, hi], [lo, hi]])
            report["cells_visited_fraction"] = round(float((hist > 0).mean()), 4)
        else:
            report["panel"] = {
                "quantity": axis.label,
                "quantiles": {str(q): round(float(np.quantile(values, q)), 3) for q in (0.05, 0.5, 0.95, 0.99)},
            }
    if out_dir is not None:
        out = Path(out_dir)
        write_json_atomic(out / "coverage.json", report, sort_keys=True)
        _plot(transitions, returns, axis, values, out / "coverage.png")
    return report


def _plot(transitions: Transitions, returns: dict[str, np.ndarray], axis: Any, values: np.ndarray | None,
          path: Path) -> None:
    """Draws the coverage axis' ``values`` (see :func:`coverage_report`) beside the returns."""
    from bfm_gym.utils.plots import pyplot, save_figure

    plt = pyplot()
    from matplotlib.colors import LogNorm  # after pyplot(): the Agg backend is set first

    domain = transitions.domain
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    ax = axes[0]
    if values is not None and values.ndim == 2:
        lo, hi = axis.extent or (float(values.min()), float(values.max()))
        h = ax.hist2d(values[:, 0], values[:, 1], bins=60, range=[[lo, hi], [lo, hi]],
                      cmap="viridis", norm=LogNorm())
        fig.colorbar(h[3], ax=ax, label="visits")
        ax.set_aspect("equal")
        ax.set_xlabel("x")
        ax.set_ylabel("y")
        ax.set_title(f"visited {axis.label}")
    elif values is not None:
        ax.hist(values, bins=80, color="tab:blue")
        ax.set_yscale("log")
        ax.set_xlabel(axis.label)
        ax.set_ylabel("steps")
        ax.set_title(f"{domain}: {axis.label}")
    elif transitions.env is not None:  # a Gymnasium env: how long episodes last
        ax.hist(np.bincount(transitions.episode), bins=40, color="tab:blue")
        ax.set_xlabel("episode length [steps]")
        ax.set_ylabel("episodes")
        ax.set_title(f"{domain}: {int(np.asarray(transitions.terminated).sum())} terminated episodes")
    else:
        ax.axis("off")
    ax = axes[1]
    names = list(returns)
    ax.boxplot([returns[n] for n in names], showfliers=True)
    ax.set_xticks(range(1, len(names) + 1), names, rotation=30, ha="right")
    ax.set_ylabel("episode return (relabelled)")
    ax.set_title(f"{domain}: {int(transitions.episode.max()) + 1} episodes, {len(transitions)} steps")
    save_figure(fig, path)
