"""``bfm-gym compare --status``: how far a comparison folder is, without running or writing.

A long grid (the tuned walker grid is about 18 CPU-hours) runs in pieces, on several
machines or sessions. Before the next piece, its command with ``--status`` says, per adapter,
which cells are finished, which stopped part-way (they continue after their last finished
episode) and which have not started, and, for a tuned adapter with separate selection seeds,
whether its setting can be chosen yet and which one it is. It plans and checks the grid as
``compare`` does (same errors for bad input or an ``out`` holding another budget) and reads
the cell folders; it writes nothing.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bfm_gym.experiments.compare.runner import _finished, _steps_spent
from bfm_gym.experiments.compare.scoring import select_settings
from bfm_gym.experiments.compare.spec import CompareSpec, cell_name, check_folder, plan

__all__ = ["format_status", "grid_status"]


def grid_status(model: str, tasks: str | Sequence[str], adapters: str | Sequence[str], out: str | Path,
                **plan_options: Any) -> list[dict[str, Any]]:
    """Per adapter and phase, the state of the comparison's cells in ``out``.

    Args:
        model, tasks, adapters, out: As for :func:`~bfm_gym.experiments.compare.compare`.
        **plan_options: The grid's other settings as ``compare`` takes them (``seeds``,
            ``episodes``, ``config``, ``tune``, ``select_seeds``...); run-time ones
            (``workers``, ``executor``, ``progress``...) are ignored.

    Returns:
        One row per adapter and phase: ``adapter``, ``phase`` (``"cells"`` for an untuned
        adapter; ``"settings"`` and ``"reported"`` for a tuned one with separate selection
        seeds, ``"settings"`` alone when it chooses on the reported seeds), ``cells``,
        ``finished``, ``partial``, ``not_started``, ``episodes_left`` (the unspent budget in
        episodes' worth of env steps), ``chosen`` (the chosen setting once every setting's
        cells are finished, else None).

    Raises:
        ValueError: What ``compare`` refuses before running (unknown names, another budget in
            ``out``...).
    """
    keep = inspect.signature(plan).parameters
    spec = plan(model, tasks, adapters, **{k: v for k, v in plan_options.items() if k in keep})
    folder = Path(out)
    check_folder(folder, spec)
    records: dict[str, list[dict[str, Any]]] = {}
    first = spec.first_cells()
    state = {c: _cell_state(folder, spec, c, records) for c in first}
    chosen = select_settings(folder, spec, records) if spec.tune else {}
    rows = []
    for adapter in spec.adapters:
        mine = [state[c] for c in first if c[0] in spec.variants(adapter)]
        settings_done = all(st == "finished" for st, _ in mine)
        tuned = adapter in spec.tune
        choice = spec.setting(chosen[adapter]) if tuned and settings_done else None
        rows.append(_row(adapter, "settings" if tuned else "cells", mine, spec, choice))
        if tuned and spec.select_seeds:
            reported = [_cell_state(folder, spec, (chosen[adapter], t, s), records) if settings_done
                        else ("not_started", 0) for t in spec.tasks for s in spec.seeds]
            rows.append(_row(adapter, "reported", reported, spec, choice))
    return rows


def _cell_state(folder: Path, spec: CompareSpec, cell: tuple[str, str, int],
                records: dict[str, list[dict[str, Any]]]) -> tuple[str, int]:
    """``("finished" | "partial" | "not_started", env steps spent)`` of one cell; a finished
    cell's records go into ``records`` (the selection reads them)."""
    name = cell_name(*cell)
    recs = _finished(folder / "cells" / name, spec)
    if recs is not None:
        records[name] = recs
        return "finished", spec.budget_steps
    spent = _steps_spent(folder / "cells" / name / "records.jsonl")
    return ("partial" if spent else "not_started"), spent


def _row(adapter: str, phase: str, cells: list[tuple[str, int]], spec: CompareSpec,
         chosen: str | None) -> dict[str, Any]:
    states = [st for st, _ in cells]
    left = sum(max(0, spec.budget_steps - spent) for st, spent in cells if st != "finished")
    return {"adapter": adapter, "phase": phase, "cells": len(states), "finished": states.count("finished"),
            "partial": states.count("partial"), "not_started": states.count("not_started"),
            "episodes_left": round(left / spec.episode_length, 1), "chosen": chosen}


def format_status(rows: list[dict[str, Any]]) -> str:
    """The rows of :func:`grid_status` as a text table, with the totals."""
    head = f"{'adapter':<22}{'phase':<10}{'cells':>6}{'done':>6}{'partial':>8}{'to start':>9}{'episodes left':>15}  chosen"
    lines = [head]
    for r in rows:
        chosen = r["chosen"] or ("(not yet)" if r["phase"] != "cells" else "")
        lines.append(f"{r['adapter']:<22}{r['phase']:<10}{r['cells']:>6}{r['finished']:>6}{r['partial']:>8}"
                     f"{r['not_started']:>9}{r['episodes_left']:>15g}  {chosen}")
    total = {k: sum(r[k] for r in rows) for k in ("cells", "finished", "partial", "not_started", "episodes_left")}
    lines.append(f"{'all':<22}{'':<10}{total['cells']:>6}{total['finished']:>6}{total['partial']:>8}"
                 f"{total['not_started']:>9}{round(total['episodes_left'], 1):>15g}")
    return "\n".join(lines)
