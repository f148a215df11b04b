"""Outputs of a comparison: ``results.csv`` (and ``.parquet`` with pyarrow),
``cells.json``, ``aggregates.json``/``.csv``, then the plots and ``report.md``
(:mod:`bfm_gym.experiments.compare.report`)."""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bfm_gym.experiments.compare.report import write_report
from bfm_gym.experiments.compare.scoring import score
from bfm_gym.experiments.compare.spec import CompareResult, CompareSpec
from bfm_gym.utils.io import atomic_path, write_json_atomic, write_text_atomic

logger = logging.getLogger("bfm_gym.experiments.compare")

__all__ = ["write_outputs"]

_RESULT_COLUMNS = ("adapter", "setting", "selected", "task", "seed", "episode", "env_steps", "sim_steps", "labels_used",
                   "return", "within_budget", "zero_shot", "oracle", "oracle_source",
                   "score_zero_shot", "score_oracle", "eval_return", "eval_std", "eval_score_zero_shot",
                   "wall_s")
"""``return``/``score_*``: the training episode; ``eval_*``: the evaluation point taken after
it (mean and std over the fixed start states; empty where none was taken). ``setting``: the
tuned setting of the row's cell (``lr=0.001``; empty for an untuned adapter); ``selected``:
the cell is one the aggregates use (the adapter's chosen setting on a reported seed);
``zero_shot`` is the level over the reported seeds, also on rows of selection seeds."""


def write_outputs(folder: Path, spec: CompareSpec, records: dict[str, list[dict[str, Any]]],
                  ran: set[str], reps: int, command: str, window: int = 1,
                  chosen: Mapping[str, str] | None = None) -> CompareResult:
    """Scores the cells (:func:`~bfm_gym.experiments.compare.scoring.score`; tuned adapters
    at their ``chosen`` variant) and writes every output file into ``folder``; returns the
    :class:`CompareResult`."""
    rows, cells, aggregates, agg_rows, checkpoints = score(folder, spec, records, ran, reps, window, chosen)
    files = _write_tables(folder, rows, cells, aggregates, agg_rows)
    files.update(write_report(folder, spec, rows, cells, aggregates, checkpoints, command, reps))
    return CompareResult(out=folder, spec=spec, rows=rows, cells=cells, aggregates=aggregates, files=files)


def _csv_text(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _write_tables(folder: Path, rows: list[dict[str, Any]], cells: list[dict[str, Any]],
                  aggregates: dict[str, Any], agg_rows: list[dict[str, Any]]) -> dict[str, Path]:
    files = {"results.csv": folder / "results.csv", "cells.json": folder / "cells.json",
             "aggregates.json": folder / "aggregates.json", "aggregates.csv": folder / "aggregates.csv"}
    write_text_atomic(files["results.csv"], _csv_text(rows, _RESULT_COLUMNS))
    write_json_atomic(files["cells.json"], cells, newline=False)
    write_json_atomic(files["aggregates.json"], _json_safe(aggregates), newline=False)
    write_text_atomic(files["aggregates.csv"], _csv_text(agg_rows, list(agg_rows[0]) if agg_rows else ["adapter"]))
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        logger.info("pyarrow not installed: no results.parquet")
    else:
        with atomic_path(folder / "results.parquet") as tmp:
            pq.write_table(pa.Table.from_pylist([{c: r[c] for c in _RESULT_COLUMNS} for r in rows]), tmp)
        files["results.parquet"] = folder / "results.parquet"
    return files


def _json_safe(obj: Any) -> Any:
    """NaN -> None (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    return obj
