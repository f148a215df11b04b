"""Tasks: reward functions of the simulator state after a step.

A task is a function ``reward(physics) -> float`` evaluated on the dm_control
``Physics`` *after* the step, exactly as dm_control suite tasks compute
``get_reward``. Because the reward depends only on the simulator state (positions,
velocities, actuator activations and the control that was applied, all captured
by :func:`bfm_gym.envs.state.get_state`), any stored transition can be relabelled
offline: restore the stored next-state, run ``mj_forward`` and call the same
function (see :mod:`bfm_gym.envs.relabel`).

Reward definitions follow dm_control's suite (walker, cheetah, quadruped) and the
URLB/ExORL additions (walker flip, cheetah backward, quadruped stand/jump). Where
the original constants could not be checked against a primary source they are
our own choice and say so in the task's description.

Adding a task::

    from bfm_gym.envs import register_task

    def walker_crouch(physics) -> float:
        return float(physics.torso_height() < 0.6)

    register_task("walker", "crouch", walker_crouch, "torso below 0.6 m")
"""

from __future__ import annotations

import difflib
import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from bfm_gym.envs.shaping import body_id, sensor_slice
from bfm_gym.envs.shaping import tolerance as _tolerance

RewardFn = Callable[[Any], float]

NATIVE = "native"
"""Name of the task whose reward is the env's own (every Gymnasium domain has it)."""

TaskInputs = Literal["simulator", "transition", "native"]


def task_inputs(fn: Any) -> TaskInputs:
    """``"transition"`` for ``fn(obs, action, next_obs)``, else ``"simulator"`` (``fn(env)``
    or, for dm_control domains, ``fn(physics)``)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return "simulator"
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p for p in sig.parameters.values() if p.kind in kinds and p.default is p.empty]
    return "transition" if len(required) == 3 else "simulator"


def native_reward(*_: Any) -> float:
    """Placeholder of the ``native`` task: its reward comes from the env or the dataset."""
    raise RuntimeError("The native task's reward is the env's own; it is read, not computed.")


def finite_scalar(value: Any, task: str, where: str) -> float:
    """``float(value)`` when it is one finite number; ``ValueError`` naming the task otherwise."""
    if np.ndim(value) != 0:
        raise ValueError(
            f"Task {task!r} returned a value of shape {np.shape(value)} {where}; a task must "
            "return one float (sum or select the entries you mean)."
        )
    try:
        r = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Task {task!r} returned {value!r} {where}; a task must return one float.") from exc
    if not math.isfinite(r):
        raise ValueError(
            f"Task {task!r} returned {r} {where}; a task must return a finite float (guard "
            "divisions and logarithms)."
        )
    return r
"""A reward function: ``fn(physics) -> float`` on the dm_control Physics after a step."""


@dataclass(frozen=True)
class Task:
    """A named reward function for one domain.

    Attributes:
        domain: Name of the domain the reward is defined for (e.g. ``"walker"``), or a
            Gymnasium id (``"Hopper-v5"``; see :mod:`bfm_gym.envs.gym_tasks`).
        name: Task name within the domain (e.g. ``"run"``).
        reward: ``fn(physics) -> float`` (dm_control domains; only the simulator state);
            for Gymnasium ids also ``fn(env) -> float`` (MuJoCo envs) or
            ``fn(obs, action, next_obs) -> float``.
        description: One line for listings.
        params: JSON-safe parameters that define the task (e.g. a goal), for specs.
        inputs: What ``reward`` takes, read from its signature: ``"simulator"`` (one
            argument), ``"transition"`` (three) or ``"native"`` (the env's own reward).
    """

    domain: str
    name: str
    reward: RewardFn
    description: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    inputs: str = ""

    def __post_init__(self) -> None:
        if not self.inputs:
            object.__setattr__(self, "inputs", task_inputs(self.reward))

    def __call__(self, physics: Any) -> float:
        return float(self.reward(physics))


def _registry() -> dict[tuple[str, str], tuple[Any, str]]:
    """The plugin registry of tasks, ``{(domain, name): (Task or (fn, description), plugin)}``.

    Built-in tasks come through the ``register_tasks`` hook too (:mod:`bfm_gym.builtin_plugin`);
    :func:`register_task` adds to the same table.
    """
    from bfm_gym.plugins import load_plugins

    return load_plugins().tasks


def _domain_tasks(domain: str) -> dict[str, Task]:
    """The registered tasks of ``domain`` by name (hook entries become Task records once)."""
    table = _registry()
    out: dict[str, Task] = {}
    for (d, name), (value, plugin) in list(table.items()):
        if d != domain:
            continue
        if not isinstance(value, Task):
            fn, description = value
            value = Task(domain=d, name=name, reward=fn, description=description)
            table[(d, name)] = (value, plugin)
        out[name] = value
    return out


def register_task(
    domain: str,
    name: str,
    reward: RewardFn,
    description: str = "",
    *,
    overwrite: bool = False,
) -> Task:
    """Registers ``reward`` as task ``name`` of ``domain`` and returns the Task.

    Args:
        domain: Domain name, or a Gymnasium id (``"Hopper-v5"``); it does not need to be
            known yet (plugins may register tasks before their domain).
        name: Task name; letters, digits and underscores (``native`` is reserved for a
            Gymnasium env's own reward).
        reward: ``fn(physics) -> float`` evaluated after each step; for a Gymnasium id,
            ``fn(obs, action, next_obs) -> float`` or, for MuJoCo envs, ``fn(env) -> float``
            on the unwrapped env at the next state (:mod:`bfm_gym.envs.gym_tasks`).
        description: One line for ``bfm-gym tasks``.
        overwrite: Replace an existing task of the same name instead of raising.

    Raises:
        ValueError: If the name is taken (and ``overwrite`` is False) or invalid.
    """
    if not name or not name.replace("_", "").isalnum():
        raise ValueError(f"Task name must be letters, digits and underscores; got {name!r}.")
    if not callable(reward):
        raise TypeError(f"Task reward must be callable fn(physics) -> float; got {type(reward).__name__}.")
    table = _registry()
    if (domain, name) in table and not overwrite:
        raise ValueError(
            f"Task {domain}/{name} is already registered; pass overwrite=True to replace it."
        )
    if _is_gym_domain(domain) and name == "native":
        raise ValueError(f"Task name 'native' is reserved for the env's own reward ({domain}).")
    task = Task(domain=domain, name=name, reward=reward, description=description)
    table[(domain, name)] = (task, "register_task")
    return task


def list_tasks(domain: str) -> list[str]:
    """Returns the sorted task names registered for ``domain`` (a Gymnasium id's list starts
    with ``native``, its own reward)."""
    names = sorted(_domain_tasks(domain))
    if _is_gym_domain(domain):

        names = [NATIVE, *[n for n in names if n != NATIVE]]
    return names


def _is_gym_domain(domain: str) -> bool:
    from bfm_gym.envs.domains import is_gym_domain

    return is_gym_domain(domain)


def _checked(domain: str, task: Task) -> Task:
    if task.inputs == "transition" and not _is_gym_domain(domain):
        raise ValueError(
            f"Task {task.name!r} is fn(obs, action, next_obs), but tasks of the dm_control "
            f"domain {domain!r} are fn(physics) -> float on the simulator after the step "
            "(transition tasks are for Gymnasium envs)."
        )
    return task


def get_task(domain: str, task: str | Task | RewardFn) -> Task:
    """Resolves a task given by name, Task, or a plain reward function.

    Raises:
        ValueError: Unknown task name; the message lists the valid names.
    """
    if isinstance(task, Task):
        if task.domain != domain:
            raise ValueError(
                f"Task {task.domain}/{task.name} belongs to domain {task.domain!r}, "
                f"not {domain!r}."
            )
        return _checked(domain, task)
    if callable(task):
        name = getattr(task, "__name__", type(task).__name__)
        return _checked(domain, Task(domain=domain, name=name, reward=task,
                                     description="user reward function"))
    tasks = _domain_tasks(domain)
    if _is_gym_domain(domain) and task not in tasks:

        tasks = {NATIVE: Task(domain=domain, name=NATIVE, reward=native_reward,
                              description="the env's own reward", inputs="native"), **tasks}
    if task not in tasks:
        valid = ", ".join(sorted(tasks)) or "(none)"
        close = difflib.get_close_matches(str(task), list(tasks), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown task {task!r} for domain {domain!r}.{hint} Valid tasks: {valid}.")
    return tasks[task]



def _torso_upright(physics: Any) -> float:
    """z-z entry of the torso's rotation matrix (1 upright, -1 upside down)."""
    return float(physics.data.xmat[body_id(physics, "torso"), 8])


def _torso_height(physics: Any) -> float:
    return float(physics.data.xpos[body_id(physics, "torso"), 2])


def _subtree_linvel_x(physics: Any) -> float:
    return float(physics.data.sensordata[sensor_slice(physics, "torso_subtreelinvel")][0])


# ---------------------------------------------------------------------------------
# walker (dm_control suite constants: stand height 1.2 m, walk 1 m/s, run 8 m/s;
# flip from URLB: angular momentum of the torso about y, target 5).
# ---------------------------------------------------------------------------------

_WALKER_STAND_HEIGHT = 1.2
_WALKER_WALK_SPEED = 1.0
_WALKER_RUN_SPEED = 8.0
_WALKER_SPIN_SPEED = 5.0


def _walker_stand_reward(physics: Any) -> float:
    standing = _tolerance(
        _torso_height(physics),
        bounds=(_WALKER_STAND_HEIGHT, float("inf")),
        margin=_WALKER_STAND_HEIGHT / 2,
    )
    upright = (1 + _torso_upright(physics)) / 2
    return (3 * standing + upright) / 4


def _walker_move(speed: float) -> RewardFn:
    def reward(physics: Any) -> float:
        move = _tolerance(
            _subtree_linvel_x(physics),
            bounds=(speed, float("inf")),
            margin=speed / 2,
            value_at_margin=0.5,
            sigmoid="linear",
        )
        return _walker_stand_reward(physics) * (5 * move + 1) / 6

    return reward


def walker_flip(physics: Any) -> float:
    """Walker flip (URLB): stand reward times torso angular momentum about y >= 5."""
    import mujoco

    # subtree_angmom is filled by mj_subtreeVel; call it so the value is fresh in
    # both the online step and offline relabelling.
    mujoco.mj_subtreeVel(physics.model.ptr, physics.data.ptr)
    angmom = float(physics.data.subtree_angmom[body_id(physics, "torso"), 1])
    spin = _tolerance(
        angmom,
        bounds=(_WALKER_SPIN_SPEED, float("inf")),
        margin=_WALKER_SPIN_SPEED,
        value_at_margin=0,
        sigmoid="linear",
    )
    return _walker_stand_reward(physics) * (5 * spin + 1) / 6


# ---------------------------------------------------------------------------------
# cheetah (dm_control run speed 10 m/s; URLB walk 2 m/s and the backward variants).
# ---------------------------------------------------------------------------------


def _cheetah_speed(target: float, direction: float) -> RewardFn:
    def reward(physics: Any) -> float:
        return _tolerance(
            direction * _subtree_linvel_x(physics),
            bounds=(target, float("inf")),
            margin=target,
            value_at_margin=0,
            sigmoid="linear",
        )

    return reward


# ---------------------------------------------------------------------------------
# quadruped (dm_control walk 0.5 m/s, run 5 m/s; stand and jump follow URLB's
# shape: upright times a linear tolerance on the centre-of-mass height. The stand
# height 0.5 m is our choice: a quadruped resting on its legs has its COM at
# about 0.45 m, so standing tall is rewarded above lying.)
# ---------------------------------------------------------------------------------

_QUAD_WALK_SPEED = 0.5
_QUAD_RUN_SPEED = 5.0
_QUAD_STAND_HEIGHT = 0.5
_QUAD_JUMP_HEIGHT = 1.0


def _quadruped_upright(physics: Any) -> float:
    return _tolerance(
        _torso_upright(physics), bounds=(1.0, float("inf")), sigmoid="linear", margin=2.0,
        value_at_margin=0,
    )


def _quadruped_com_height(physics: Any) -> float:
    return float(physics.data.subtree_com[body_id(physics, "torso"), 2])


def _quadruped_forward_speed(physics: Any) -> float:
    return float(physics.data.sensordata[sensor_slice(physics, "velocimeter")][0])


def _quadruped_at_least(measure: Callable[[Any], float], target: float) -> RewardFn:
    """Upright times a linear tolerance reaching 1 once ``measure(physics) >= target``."""
    def reward(physics: Any) -> float:
        level = _tolerance(measure(physics), bounds=(target, float("inf")), margin=target,
                           value_at_margin=0.5, sigmoid="linear")
        return _quadruped_upright(physics) * level

    return reward


def _quadruped_height(target: float) -> RewardFn:
    return _quadruped_at_least(_quadruped_com_height, target)


def _quadruped_move(speed: float) -> RewardFn:
    return _quadruped_at_least(_quadruped_forward_speed, speed)


# ---------------------------------------------------------------------------------
# point_mass_maze: reach rewards live with the domain (bfm_gym.envs.point_mass_maze).
# ---------------------------------------------------------------------------------


def builtin_tasks() -> list[tuple[str, str, RewardFn, str]]:
    """The built-in tasks as ``(domain, name, reward_fn, description)`` rows.

    Registered through the plugin hook ``register_tasks`` by :mod:`bfm_gym.builtin_plugin`.
    """
    from bfm_gym.envs import point_mass_maze

    builtin: list[tuple[str, str, RewardFn, str]] = [
        ("walker", "stand", _walker_stand_reward, "torso above 1.2 m and upright"),
        ("walker", "walk", _walker_move(_WALKER_WALK_SPEED), "stand and move forward at >= 1 m/s"),
        ("walker", "run", _walker_move(_WALKER_RUN_SPEED), "stand and move forward at >= 8 m/s"),
        ("walker", "flip", walker_flip, "stand reward times forward spin (angular momentum >= 5)"),
        ("cheetah", "walk", _cheetah_speed(2.0, 1.0), "forward speed >= 2 m/s"),
        ("cheetah", "run", _cheetah_speed(10.0, 1.0), "forward speed >= 10 m/s"),
        ("cheetah", "walk_backward", _cheetah_speed(2.0, -1.0), "backward speed >= 2 m/s"),
        ("cheetah", "run_backward", _cheetah_speed(10.0, -1.0), "backward speed >= 10 m/s"),
        ("quadruped", "stand", _quadruped_height(_QUAD_STAND_HEIGHT), "upright, centre of mass above 0.5 m"),
        ("quadruped", "walk", _quadruped_move(_QUAD_WALK_SPEED), "upright, forward speed >= 0.5 m/s"),
        ("quadruped", "run", _quadruped_move(_QUAD_RUN_SPEED), "upright, forward speed >= 5 m/s"),
        ("quadruped", "jump", _quadruped_height(_QUAD_JUMP_HEIGHT), "upright, centre of mass above 1 m"),
    ]
    for corner, xy in point_mass_maze.TARGETS.items():
        builtin.append(
            (
                "point_mass_maze",
                f"reach_{corner}",
                point_mass_maze.reach_reward(xy),
                f"reach the {corner.replace('_', ' ')} room centre {tuple(xy)}",
            )
        )
    return builtin


def goal_task(domain: str, goal: Sequence[float]) -> Task:
    """Returns the task of reaching ``goal`` in a domain that defines goals.

    Only ``point_mass_maze`` defines goals: ``goal`` is an ``(x, y)`` position.

    Raises:
        ValueError: The domain has no goal tasks, or the goal has the wrong shape.
    """
    if domain != "point_mass_maze":
        raise ValueError(
            f"Domain {domain!r} has no goal tasks; goals (x, y) exist for point_mass_maze."
        )
    from bfm_gym.envs import point_mass_maze

    xy = np.asarray(goal, dtype=np.float64).reshape(-1)
    if xy.shape != (2,) or not np.all(np.isfinite(xy)):
        raise ValueError(f"A point_mass_maze goal is a finite (x, y) pair; got {goal!r}.")
    lim = point_mass_maze.ARENA_HALF_SIZE
    if np.any(np.abs(xy) > lim):
        raise ValueError(f"Goal {tuple(xy)} lies outside the maze (|x|, |y| <= {lim}).")
    return Task(
        domain=domain,
        name="reach",
        reward=point_mass_maze.reach_reward(xy),
        description=f"reach {tuple(float(v) for v in xy)}",
        params={"goal": [float(v) for v in xy]},
    )

