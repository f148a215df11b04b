"""The grid of a comparison and its budgets (:class:`CompareSpec`), and every check that
can fail, made before any worker starts (:func:`plan`, :func:`check_folder`)."""

from __future__ import annotations

import itertools
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bfm_gym.config import SetValue
from bfm_gym.envs.registration import task_name
from bfm_gym.errors import UserError, unknown_name
from bfm_gym.experiments.compare.tuning import resolve_grids, setting_label, variant_id
from bfm_gym.experiments.run_folder import resolve_task

__all__ = ["BUDGET_KEYS", "CompareError", "CompareResult", "CompareSpec", "cell_name", "check_folder",
           "parse_overrides", "plan"]

BUDGET_KEYS = frozenset({"episodes", "budget_steps", "budget_labels", "max_labels",
                         "max_episode_steps", "seed", "seeds"})
"""Keys ``--set ADAPTER.KEY=...`` may not set: they would give cells unequal budgets."""
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.+-]+$")


class CompareError(UserError, RuntimeError):
    """Some cells failed; the others' folders are kept, rerun to resume."""


@dataclass(frozen=True, kw_only=True)
class CompareSpec:
    """The grid and its budgets, as written to ``compare.json``."""

    model: str
    """Shipped model name or model folder (workers load it by this name)."""
    domain: str
    """The model's domain."""
    tasks: tuple[str, ...]
    """Canonical task names, ``"walker-run"``."""
    adapters: tuple[str, ...]
    """Registered adapter names."""
    seeds: tuple[int, ...]
    """Seeds; every adapter and task runs each."""
    episodes: int
    """Episodes per cell (the budget is ``episodes x episode_length`` env steps)."""
    max_episode_steps: int | None
    """Episode cap (None: full 1000-step episodes)."""
    episode_length: int
    """Env steps per episode."""
    budget_steps: int
    """Env-step budget of every cell, lookahead steps included."""
    budget_labels: int
    """Cap on online reward labels of every cell."""
    configs: dict[str, dict[str, Any]]
    """Adapter (or, for a tuned adapter, each variant id) -> full config (defaults filled in)."""
    oracle: dict[str, float]
    """Task -> oracle return given with ``--oracle`` (others: the zero-shot level)."""
    checkpoints: tuple[int, ...]
    """Budgets, in episodes, at which aggregates are reported (the last is ``episodes``)."""
    acts: dict[str, str] = field(default_factory=dict)
    """Adapter -> ``"latent"`` (searches z) or ``"env"`` (fine-tunes weights, acts on the env)."""
    eval_episodes: int = 5
    """Fixed start states per evaluation point (0: score training returns instead)."""
    eval_every: int = 0
    """Extra evaluation points every this many episodes' worth of budget (0: checkpoints only)."""
    tune: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Tuned adapter -> ``{"key": config field, "values": [...], "variants": [ids]}`` (see
    :mod:`.tuning`); ``configs`` then holds one entry per variant id (``"lola@lr=0.001"``)."""
    select_seeds: tuple[int, ...] = ()
    """Seeds on which the tuned adapters' settings are chosen (empty: the seeds themselves)."""

    def variants(self, adapter: str) -> list[str]:
        """The ids of ``adapter``'s settings (its own name when it is not tuned)."""
        return list(self.tune[adapter]["variants"]) if adapter in self.tune else [adapter]

    def setting(self, variant: str) -> str | None:
        """``"lr=0.001"`` for a variant id, None for an untuned adapter."""
        return variant.split("@", 1)[1] if "@" in variant else None

    def selection_seeds(self) -> tuple[int, ...]:
        return self.select_seeds or self.seeds

    def first_cells(self) -> list[tuple[str, str, int]]:
        """``(variant, task, seed)`` runnable before any choice: every setting of the tuned
        adapters on the selection seeds, the untuned adapters on the seeds."""
        out = []
        for adapter in self.adapters:
            seeds = self.selection_seeds() if adapter in self.tune else self.seeds
            out += list(itertools.product(self.variants(adapter), self.tasks, seeds))
        return out

    def chosen_cells(self, chosen: Mapping[str, str]) -> list[tuple[str, str, int]]:
        """``(variant, task, seed)`` of every adapter at its chosen setting on the seeds."""
        return [(chosen.get(a, a), t, s) for a, t, s in self.cells()]

    def eval_steps(self) -> list[int]:
        """Env-step budgets before which every cell takes an evaluation point."""
        if not self.eval_episodes:
            return []
        steps = {k * self.episode_length for k in self.checkpoints}
        if self.eval_every:
            steps |= {k * self.episode_length for k in range(self.eval_every, self.episodes + 1, self.eval_every)}
        return sorted(steps)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        d = asdict(self)
        for key in ("tasks", "adapters", "seeds", "checkpoints", "select_seeds"):
            d[key] = list(d[key])
        return d

    def budget(self) -> dict[str, Any]:
        """The fields a rerun into the same folder must keep."""
        return {k: getattr(self, k) for k in ("model", "episodes", "max_episode_steps",
                                             "budget_steps", "budget_labels", "eval_episodes", "eval_every")}

    def cells(self) -> list[tuple[str, str, int]]:
        """``(adapter, task, seed)`` in a fixed order."""
        return list(itertools.product(self.adapters, self.tasks, self.seeds))


@dataclass
class CompareResult:
    """What :func:`compare` produced (also written to ``out``)."""

    out: Path
    spec: CompareSpec
    rows: list[dict[str, Any]]
    """One dict per (adapter, task, seed, episode); the columns of ``results.csv``."""
    cells: list[dict[str, Any]]
    """Per cell: budgets given and used, status (``ran`` this time, or ``reused``: found complete
    in ``out`` from an earlier run and not run again)."""
    aggregates: dict[str, Any]
    """The contents of ``aggregates.json``."""
    files: dict[str, Path] = field(default_factory=dict)


def cell_name(adapter: str, task: str, seed: int) -> str:
    """Folder name of a cell: ``{adapter}__{task}__s{seed}``."""
    return f"{adapter}__{task}__s{seed}"


def parse_overrides(values: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Parses ``ADAPTER.KEY=VALUE`` strings; each value is parsed by its config field's type.

    Args:
        values: E.g. ``["opti.beta=0.2", "rela.lr=1e-3"]``.

    Returns:
        ``{"opti": {"beta": "0.2"}, "rela": {"lr": "1e-3"}}`` with :class:`~bfm_gym.config.SetValue`
        strings, which the adapter's ``config_class.from_dict`` turns into ``0.2`` and ``0.001``.

    Raises:
        ValueError: An item without ``=`` or without an ``ADAPTER.`` prefix.
    """
    out: dict[str, dict[str, Any]] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        adapter, dot, name = key.strip().partition(".")
        if not sep or not dot or not adapter or not name:
            raise ValueError(f"--set needs ADAPTER.KEY=VALUE (e.g. opti.beta=0.2); got {item!r}.")
        fields = out.setdefault(adapter, {})
        if name in fields:
            raise UserError(f"--set {adapter}.{name} is given twice; keep one.")
        fields[name] = SetValue(raw.strip())  # typed by the adapter's config (bfm_gym.config)
    return out



def split_names(names: str | Sequence[str]) -> list[str]:
    """Names from ``"a,b"`` or a list, stripped, empty ones dropped."""
    items = names.split(",") if isinstance(names, str) else list(names)
    return [n.strip() for n in items if n and n.strip()]


def plan(
    model: str | os.PathLike[str],
    tasks: str | Sequence[str],
    adapters: str | Sequence[str],
    *,
    seeds: int | Sequence[int] = 5,
    episodes: int = 50,
    config: Mapping[str, Mapping[str, Any]] | None = None,
    max_episode_steps: int | None = None,
    max_labels: int | None = None,
    oracle: Mapping[str, float] | None = None,
    checkpoints: Sequence[int] | None = None,
    eval_episodes: int = 5,
    eval_every: int = 0,
    tune: Mapping[str, Sequence[Any]] | None = None,
    select_seeds: Sequence[int] | None = None,
) -> CompareSpec:
    """Checks a comparison request and returns its :class:`CompareSpec` (runs nothing).

    Args: as :func:`compare`.

    Raises:
        ValueError: Unknown model/task/adapter (the message lists valid names), an
            invalid config field, a budget override, or an adapter whose needs the
            model cannot meet.
    """
    from bfm_gym.envs.dmc_env import EPISODE_STEPS
    from bfm_gym.plugins import load_plugins
    from bfm_gym.pretrained import resolve

    if isinstance(model, os.PathLike) or not isinstance(model, str):
        model = os.fspath(model)
    adapter_names, task_names = split_names(adapters), split_names(tasks)
    if not adapter_names or not task_names:
        raise ValueError("Give at least one adapter and one task.")
    for kind, names in (("adapter", adapter_names), ("task", task_names)):
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"{kind} listed twice: {', '.join(dup)}.")
    try:
        seed_list = list(range(seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    except (TypeError, ValueError):
        raise UserError(f"seeds must be a count or a list of non-negative ints; got {seeds!r}.") from None
    if not seed_list or len(set(seed_list)) != len(seed_list) or min(seed_list) < 0:
        raise ValueError(f"seeds must be a positive count or distinct non-negative ints; got {seeds!r}.")
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1; got {episodes}.")
    if max_episode_steps is not None and max_episode_steps < 1:
        raise ValueError(f"max_episode_steps must be >= 1; got {max_episode_steps}.")

    registry = load_plugins().adapters
    unknown = [a for a in adapter_names if a not in registry]
    if unknown:
        raise unknown_name("adapter", unknown[0], registry,
                           fix="Plugins add more: `bfm-gym plugins --hook register_adapters`.")
    for name in adapter_names:
        if not _SAFE_NAME.match(name):
            raise ValueError(f"Adapter name {name!r} cannot name a folder; use letters, digits, '.', '_', '-'.")
    if not isinstance(config or {}, Mapping) or not all(isinstance(v, Mapping) for v in (config or {}).values()):
        raise UserError(f"config maps adapter -> {{field: value}} (e.g. {{'opti': {{'beta': 0.2}}}}); got {config!r}.")
    config = {k: dict(v) for k, v in (config or {}).items()}
    extra = sorted(set(config) - set(adapter_names))
    if extra:
        raise ValueError(f"--set for adapter(s) not in the comparison: {', '.join(extra)}; "
                         f"adapters: {', '.join(adapter_names)}.")
    for name, fields in config.items():
        bad = sorted(set(fields) & BUDGET_KEYS)
        if bad:
            raise ValueError(
                f"--set {name}.{bad[0]}: per-adapter {bad[0]!r} would give cells unequal budgets; "
                "compare gives every cell the same budget (use --episodes, --max-episode-steps, "
                "--max-labels, --seeds for all adapters)."
            )

    model_dir = resolve(model)  # unknown name: lists the shipped models
    import bfm_gym

    bfm = bfm_gym.load(model_dir)
    domain = bfm.metadata.domain
    if domain is None:
        raise ValueError(f"Model {model!r} records no domain; compare needs a model trained on a bfm_gym domain.")
    canonical = []
    for t in task_names:
        spec = resolve_task(domain, t, None)  # unknown task: lists the valid ones
        canonical.append(f"{domain}-{spec['task']}")
    if len(set(canonical)) != len(canonical):
        raise ValueError(f"A task is listed twice: {', '.join(task_names)}.")

    grids = resolve_grids(tune, adapter_names, registry)
    if grids and not eval_episodes:
        raise UserError("--tune chooses each adapter's setting on its paired evaluation curve; it needs "
                        "--eval-episodes >= 1.")
    sel_seeds = _select_seeds(select_seeds, seed_list, bool(grids))
    samples = bfm.samples
    configs: dict[str, dict[str, Any]] = {}
    acts: dict[str, str] = {}
    tuned: dict[str, dict[str, Any]] = {}
    for name in adapter_names:
        cls = registry[name][0]
        key, values = grids.get(name, (None, [None]))
        if key is not None and key in config.get(name, {}):
            raise UserError(f"{name}.{key} is both set (--set) and tuned (--tune); drop one.")
        ids: list[str] = []
        typed: list[Any] = []
        for value in values:
            fields = dict(config.get(name, {}))
            if key is not None:
                fields[key] = value if not isinstance(value, str) else SetValue(value)
            try:
                cfg = cls.config_class.from_dict(fields)
            except (ValueError, TypeError) as exc:
                raise ValueError(f"{'--tune' if key else '--set'} for {name}: {exc}") from exc
            needs = cls.needs_for(cfg)
            if "dataset" in needs.labels and samples is None:
                raise ValueError(f"Adapter {name!r} needs the model's dataset samples (inference samples); "
                                 f"{model!r} ships none. Pass a model folder made by `bfm-gym pretrain`.")
            cfg_json = json.loads(json.dumps(cfg.to_dict()))
            vid = name if key is None else variant_id(name, key, cfg_json[key])
            if vid in configs:
                raise UserError(f"--tune {name}.{key}: two values give the same setting ({setting_label(key, cfg_json[key])}).")
            configs[vid] = cfg_json
            acts[name] = needs.acts
            ids.append(vid)
            typed.append(cfg_json.get(key) if key else None)
        if key is not None:
            tuned[name] = {"key": key, "values": typed, "variants": ids}

    oracles: dict[str, float] = {}
    for key, value in (oracle or {}).items():
        name = f"{domain}-{task_name(domain, key)}"
        if name not in canonical:
            raise ValueError(f"--oracle for task {key!r}, which is not compared; tasks: {', '.join(canonical)}.")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"oracle for {key!r} must be a number (a reference return); got {value!r}.")
        oracles[name] = float(value)

    length = min(max_episode_steps, EPISODE_STEPS) if max_episode_steps else EPISODE_STEPS
    budget_steps = episodes * length
    if max_labels is not None and max_labels < 1:
        raise ValueError(f"max_labels must be >= 1; got {max_labels}.")
    if checkpoints is None:
        checks = sorted({c for c in (1, 10, 20, 50) if c < episodes} | {episodes})
    else:
        checks = sorted({int(c) for c in checkpoints} | {episodes})
        if checks[0] < 1 or checks[-1] > episodes:
            raise ValueError(f"checkpoints are episode counts in 1..{episodes}; got {list(checkpoints)}.")
    return CompareSpec(model=model, domain=domain, tasks=tuple(canonical), adapters=tuple(adapter_names),
                       seeds=tuple(seed_list), episodes=episodes, max_episode_steps=max_episode_steps,
                       episode_length=length, budget_steps=budget_steps,
                       budget_labels=max_labels if max_labels is not None else budget_steps,
                       configs=configs, oracle=oracles, checkpoints=tuple(checks), acts=acts,
                       eval_episodes=eval_episodes, eval_every=eval_every, tune=tuned,
                       select_seeds=tuple(sel_seeds))


def _select_seeds(select_seeds: Sequence[int] | None, seeds: list[int], tuning: bool) -> list[int]:
    """Checked selection seeds: distinct, non-negative, none of the reported seeds."""
    if not select_seeds:
        return []
    if not tuning:
        raise UserError("--select-seeds are the seeds on which --tune chooses each setting; give --tune too.")
    try:
        out = [int(s) for s in select_seeds]
    except (TypeError, ValueError):
        raise UserError(f"select_seeds must be non-negative ints; got {select_seeds!r}.") from None
    if len(set(out)) != len(out) or min(out) < 0:
        raise UserError(f"select_seeds must be distinct non-negative ints; got {list(select_seeds)}.")
    shared = sorted(set(out) & set(seeds))
    if shared:
        raise UserError(f"select_seeds {shared} are also reported seeds; selection seeds must be others "
                        f"(e.g. --select-seeds {max(seeds) + 100},{max(seeds) + 101}) so the choice never "
                        "sees the reported runs.")
    return out


def check_folder(out: Path, spec: CompareSpec) -> None:
    """Refuses an ``out`` holding a comparison with another model/budget or cells with other configs."""
    path = out / "compare.json"
    if path.is_file():
        try:
            old = json.loads(path.read_text())
            if not isinstance(old, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            raise UserError(f"{path} is damaged ({exc}); delete {out} to start over, or choose another --out.") from exc
        mine = json.loads(json.dumps(spec.budget()))
        # folders from before paired evaluation: no eval keys, i.e. eval_episodes 0
        diff = [k for k, v in mine.items() if old.get(k, 0 if k.startswith("eval_") else None) != v]
        if diff:
            raise ValueError(
                f"{out} holds a comparison with another {', '.join(diff)} "
                f"({', '.join(f'{k}={old.get(k)!r}' for k in diff)}); unequal budgets cannot be "
                "compared: choose another --out."
            )
    every = [(v, t, s) for a in spec.adapters for v in spec.variants(a) for t in spec.tasks
             for s in sorted({*spec.seeds, *spec.selection_seeds()})]
    for variant, task, seed in every:
        run_json = out / "cells" / cell_name(variant, task, seed) / "run.json"
        if run_json.is_file():
            try:
                run = json.loads(run_json.read_text())
                run.get("config")
            except (ValueError, AttributeError) as exc:
                raise UserError(f"{run_json} is damaged ({exc}); delete that cell folder to rerun the "
                                "cell, or choose another --out.") from exc
            if run.get("config") != spec.configs[variant]:
                raise ValueError(
                    f"Cell {run_json.parent.name} ran with another {variant} config "
                    f"({run.get('config')}); use another --out or delete that cell folder."
                )
