"""``compare()`` / ``bfm-gym compare``: adapters x tasks x seeds at equal budgets.

Every *cell* (adapter, task, seed) is one :func:`~bfm_gym.experiments.adapt.adapt`
run in its own resumable folder. Output folder::

    compare.json                 the grid, its budgets, tuning grids and the chosen settings
    cells/{adapter}__{task}__s{seed}/   adapt's run folder of each cell
                                 ({adapter}@{key}={value}__... for each tuned setting)
    results.csv (.parquet)       one row per (adapter, task, seed, episode)
    cells.json                   per cell: budget given and used, status, CPU kinds that ran it
    aggregates.json, .csv        IQM / mean with stratified-bootstrap 95 % CIs
    curve_{task}.png, aggregate.png, profile.png, report.md

**Equal budgets.** Every cell gets the same *env-step budget* ``episodes x episode
length`` (the episode length is ``max_episode_steps`` or 1000) and the same cap on
*online reward labels* (``max_labels``, default: the env-step budget, i.e. one label
per env step). Both are passed to ``adapt`` (``budget_steps``, ``budget_labels``),
which counts lookahead / state-reset rollouts (``sim_steps``) as env steps and stops
before an episode once either budget is spent; the episode that crosses it still
finishes, so a cell may end slightly over budget (recorded in ``cells.json``).
Scores at a budget only use episodes that ended within it. Every cell resets episode
``k`` with ``adapt.episode_seed(seed, k)``, so all adapters of one seed see the same
initial states. Dataset labels
(the model's shipped inference samples, used by e.g. ``zero-shot`` and OpTI's warm
start) are a property of the model, the same for every adapter, and not counted.

*Unequal* means: two cells of one task that could spend a different number of env
steps or online labels, or run on a different episode length. ``compare`` refuses
what would cause that: per-adapter ``episodes``/``budget_steps``/``budget_labels``/
``max_labels``/``max_episode_steps``/``seed`` settings in ``--set``, and reusing an
``out`` folder made with another model or budget. (Adapter config fields are free;
an adapter must count every env step it takes, see :class:`~bfm_gym.adapters.base.Adapter`.)

**Paired evaluation (the default).** A cell's score is not the return of a training
episode (each starts from its own state and includes the adapter's exploration; in the
maze the start room decides most of it) but an *evaluation point*: ``eval_episodes``
episodes (default 5) from fixed start states, z frozen at the adapter's estimate,
deterministic policy (see :mod:`bfm_gym.experiments.adapt`). The start states are
``adapt.evaluation_seeds(seed, n)``: the same for every adapter of one seed and for the
zero-shot level, so scores are paired start by start. Each cell takes a point before
every checkpoint budget (and every ``eval_every`` episodes' worth of budget, for the
curves); its score at a budget is its last point taken after an episode that ended
within it. Evaluation episodes are not counted in any budget (``cells.json`` reports
their env steps). ``eval_episodes=0`` scores training returns instead (the former
protocol; ``score_window`` applies to it only).

**Tuning budget** (``tune``, ``--tune lr=x0.3,x1,x3``). Every tuned adapter runs each
setting of its grid at the same budget (one config field per adapter; by default its
learning rate; every grid the same size); each adapter is then scored at its best setting,
chosen by the area under its paired evaluation curve on the selection seeds
(``select_seeds``, none of the reported seeds; default: the reported seeds), and named
next to it in ``compare.json`` (``selected``), ``aggregates.json`` (``selected_settings``,
``tuning``: every setting's scores) and ``report.md``. Rule and its caveat:
:mod:`.tuning`.

**Unlearning.** ``aggregates.json`` (``unlearning``) and ``report.md`` give, per adapter
and task, how far its evaluation curve drops below the zero-shot level of the same start
states and the env steps until it is back (:mod:`.unlearning`).

**Normalisation.** ``zero_shot`` of a task is the mean over seeds of adapt's zero-shot
level: the zero-shot z (inferred from the model's dataset labels) on the same fixed
start states as the evaluation points. Without paired evaluation, when the grid has the
``zero-shot`` adapter, it is instead the mean return of that adapter's training episodes
over all seeds. ``score_zero_shot = return / zero_shot``: 1 is the zero-shot
level. ``score_oracle = return / oracle`` with the oracle from ``--oracle TASK=VALUE``,
else the zero-shot return with the dataset labels, which is OpTI-BFM's oracle
definition (then both scores coincide; ``oracle_source`` says which). A normaliser
that is missing or <= 0 gives NaN scores (that task leaves the aggregates).

**Resume.** A cell whose folder has a ``summary.json`` with the requested budget is
skipped; any other cell is (re)run by ``adapt``, which resumes after its last
finished episode. So a killed comparison is continued by rerunning the same command,
without losing or double-counting episodes.

**Status.** :func:`~.status.grid_status` (``bfm-gym compare ... --status``) reads a folder
without running or writing anything: per adapter, its finished, part-way and unstarted
cells, the budget left, and each tuned adapter's chosen setting once its settings' cells
are finished; for a grid run in pieces.

**Executors.** ``"local"``: a process pool (``spawn`` context, torch 1 thread per
worker; ``workers=1`` runs the cells in this process). ``"ray"``: one Ray task per
cell (``pip install 'bfm_gym[ray]'``); on a cluster, ``out`` must be on a file system
every node sees and bfm_gym must be installed on the nodes. Adapter names are looked
up with :func:`bfm_gym.plugins.load_plugins` inside every worker; the ``BFM_GYM_*``
environment variables (``BFM_GYM_LOAD_PLUGINS``...) are passed to the workers.
Adapters registered only in-process (``pm.register`` in a script) do not reach
workers; register them through an entry point.

Layout: :mod:`.spec` (the grid, its budgets and every check made before a cell runs),
:mod:`.executors` (local process pool, Ray), :mod:`.scoring` (scores at budgets, paired
evaluation differences, aggregates), :mod:`.outputs` (``results.csv``, ``cells.json``,
``aggregates.*``) and :mod:`.report` (plots, ``report.md``), :mod:`.runner`
(:func:`compare` itself), :mod:`.tuning` (grids and the selection rule), :mod:`.unlearning`
(drop and recovery), :mod:`.status` (how far a folder is). The run folder of each cell is adapt's
(:mod:`bfm_gym.experiments.run_folder`).
"""

from bfm_gym.experiments.compare.executors import RAY_MISSING, run_cell
from bfm_gym.experiments.compare.runner import compare
from bfm_gym.experiments.compare.spec import (
    BUDGET_KEYS,
    CompareError,
    CompareResult,
    CompareSpec,
    cell_name,
    parse_overrides,
    plan,
)

__all__ = ["BUDGET_KEYS", "RAY_MISSING", "CompareError", "CompareResult", "CompareSpec", "cell_name",
           "compare", "parse_overrides", "plan", "run_cell"]
