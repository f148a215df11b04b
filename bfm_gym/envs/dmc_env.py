"""``DMCEnv``: a dm_control domain with a bfm_gym task, as a Gymnasium env.

Built on Shimmy's ``DmControlCompatibilityV0`` (rendering, closing, dm_control
random state), with what BFMs need on top:

* a flat float32 ``Box`` observation in dm_control's native order (the order of
  ``task.get_observation``, as ``flat_observation=True`` gives; not the sorted keys
  of ``FlattenObservation``);
* the reward of a bfm_gym task (a function of the simulator state after the step,
  so stored transitions can be relabelled offline), or 0 for reward-free use;
* 1000-step episodes ending in truncation, never termination; the step count is
  derived from simulator time, so it survives a state restore;
* ``get_state()`` / ``set_state()`` and ``reset(options={"state": s})`` that
  reproduce trajectories bit for bit.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium.error import ResetNeeded
from gymnasium.utils import EzPickle

from bfm_gym.envs import domains as _domains  # sets MUJOCO_GL before dm_control loads
from bfm_gym.envs import state as _state
from bfm_gym.envs.tasks import RewardFn, Task, get_task, goal_task

from shimmy.dm_control_compatibility import DmControlCompatibilityV0

EPISODE_STEPS = 1000
"""Length of every bfm_gym episode in env steps (20-25 s of simulated time)."""


class DMCEnv(DmControlCompatibilityV0):
    """A bfm_gym domain as a Gymnasium environment.

    Args:
        domain: Domain name (``walker``, ``cheetah``, ``quadruped``,
            ``point_mass_maze``, or one a plugin added).
        task: Task name of that domain, a :class:`~bfm_gym.envs.tasks.Task`, a plain
            ``fn(physics) -> float``, or ``None`` for a reward-free env (reward 0).
        goal: For domains with goals (``point_mass_maze``): an ``(x, y)`` to reach;
            exclusive with ``task``.
        render_mode: ``None``, ``"rgb_array"`` or ``"depth_array"``.
        render_kwargs: Passed to ``physics.render`` (``height``, ``width``,
            ``camera_id``); defaults to 240x320 from camera 0.

    Example:
        >>> import gymnasium as gym, bfm_gym
        >>> env = gym.make("bfm_gym/walker-run-v0")
        >>> obs, info = env.reset(seed=0)
        >>> obs.shape, obs.dtype
        ((24,), dtype('float32'))
        >>> state = env.unwrapped.get_state()
        >>> obs2, *_ = env.reset(options={"state": state})
        >>> bool((obs2 == obs).all())
        True
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array", "depth_array"], "render_fps": 40}
    supports_state_reset = True

    def __init__(
        self,
        domain: str = "walker",
        task: str | Task | RewardFn | None = None,
        *,
        goal: Sequence[float] | None = None,
        render_mode: str | None = None,
        render_kwargs: dict[str, Any] | None = None,
    ) -> None:
        spec = _domains.get_domain(domain)
        if goal is not None and task is not None:
            raise ValueError("Give either task= or goal=, not both.")
        if goal is not None:
            resolved: Task | None = goal_task(domain, goal)
        elif task is not None:
            resolved = get_task(domain, task)
        else:
            resolved = None
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode={render_mode!r} is not supported; use one of "
                f"{self.metadata['render_modes']} (set MUJOCO_GL=egl when headless)."
            )
        dm_env = spec.load(None)
        kwargs = {"height": 240, "width": 320, "camera_id": 0, **(render_kwargs or {})}
        super().__init__(dm_env, render_mode=render_mode, render_kwargs=kwargs)
        EzPickle.__init__(
            self, domain, task, goal=goal, render_mode=render_mode, render_kwargs=render_kwargs
        )
        self.domain = domain
        self.task = resolved
        self._fast_observe = spec.observe
        self._physics = dm_env.physics
        model, data = self._physics.model.ptr, self._physics.data.ptr
        self._mj = (model, data)
        self._rk4 = model.opt.integrator == mujoco.mjtIntegrator.mjINT_RK4
        # Live view of MuJoCo's warning counters (int array, one per mjtWarning), checked
        # after each step: comparing two 28-byte snapshots costs ~0.4 us, reading the
        # counters one struct at a time ~2 us
        self._warnings = data.warning.number
        self._dm_task = dm_env.task
        self._dt = float(dm_env.control_timestep())
        self._n_sub_steps = round(self._dt / float(self._physics.timestep()))
        self.metadata = {**self.metadata, "render_fps": round(1.0 / self._dt)}
        obs_dim = sum(int(np.prod(s.shape)) for s in dm_env.observation_spec().values())
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        aspec = dm_env.action_spec()
        self.action_space = gym.spaces.Box(
            np.asarray(aspec.minimum, np.float32).reshape(aspec.shape),
            np.asarray(aspec.maximum, np.float32).reshape(aspec.shape),
            dtype=np.float32,
        )
        self._low = self.action_space.low.astype(np.float64)
        self._high = self.action_space.high.astype(np.float64)
        self._steps = 0
        self._needs_reset = True
        self._closed = False

    # -- Gymnasium API --------------------------------------------------------------

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Starts an episode; ``options={"state": s}`` starts it from state ``s``."""
        self._check_open()
        gym.Env.reset(self, seed=seed)
        if seed is not None:
            self._dm_task._random = np.random.RandomState(seed)
        options = dict(options or {})
        state = options.pop("state", None)
        if options:
            raise ValueError(
                f"Unknown reset option(s) {sorted(options)}; DMCEnv accepts only 'state'."
            )
        with self._physics.reset_context():
            self._dm_task.initialize_episode(self._physics)
        if state is not None:
            self.set_state(state)
        self._steps = self._step_index()
        self._needs_reset = self._steps >= EPISODE_STEPS
        return self._observation(), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Applies ``action`` for one control step (several physics sub-steps)."""
        if self._needs_reset:
            self._check_open()
            raise ResetNeeded(
                "DMCEnv.step() called before reset() or after the episode was truncated; "
                "call env.reset() first."
            )
        a = np.asarray(action, dtype=np.float64)
        if a.shape != self._low.shape:
            raise ValueError(
                f"Action of shape {a.shape} given; {self.domain} expects shape {self._low.shape}."
            )
        if not math.isfinite(a.sum()):
            raise ValueError(f"Action holds NaN or inf: {a}.")
        a = a.clip(self._low, self._high)
        physics = self._physics
        self._dm_task.before_step(a, physics)
        self._advance()
        self._dm_task.after_step(physics)
        self._steps += 1
        try:
            reward = 0.0 if self.task is None else float(self.task.reward(physics))
        except Exception as exc:  # a user's reward function: name it, the task and the call
            from bfm_gym.errors import reward_error

            raise reward_error(self.task, exc, f"fn(physics) after env step {self._steps}") from exc
        truncated = self._steps >= EPISODE_STEPS
        self._needs_reset = truncated
        return self._observation(), reward, False, truncated, {}

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._needs_reset = True
            super().close()

    # -- state ------------------------------------------------------------------------

    def get_state(self) -> np.ndarray:
        """Returns the simulator state (float64 vector) after the last step or reset."""
        self._check_open()
        return _state.get_state(self._physics)

    def set_state(self, state: Any) -> None:
        """Restores a state captured by :meth:`get_state` (same domain) mid-episode.

        Raises:
            ValueError: The state does not fit this domain.
        """
        self._check_open()
        _state.set_state(self._physics, state, self.domain)
        self._steps = self._step_index()
        self._needs_reset = self._steps >= EPISODE_STEPS

    @property
    def physics(self) -> Any:
        """The dm_control ``Physics`` (read it; change it only through set_state)."""
        return self._physics

    @property
    def state_size(self) -> int:
        """Length of a state vector of this domain."""
        return _state.state_size(self._physics)

    # -- helpers ------------------------------------------------------------------------

    def _advance(self) -> None:
        """``physics.step(n_sub_steps)`` with dm_control's legacy-step semantics, minus its
        Python overhead (a contextmanager per step): ``mj_step2``, ``n - 1`` full steps, then
        ``mj_step1`` so position/velocity quantities (sensors, xpos) match the new state.
        Raises dm_control's ``PhysicsError`` when MuJoCo raised a new warning (divergence).
        """
        model, data = self._mj
        before = self._warnings.tobytes()
        if self._rk4:
            mujoco.mj_step(model, data, self._n_sub_steps)
        else:
            mujoco.mj_step2(model, data)
            if self._n_sub_steps > 1:
                mujoco.mj_step(model, data, self._n_sub_steps - 1)
        mujoco.mj_step1(model, data)
        if self._warnings.tobytes() != before:  # some counter moved: which ones grew?
            grew = self._warnings > np.frombuffer(before, dtype=self._warnings.dtype)
            if not grew.any():
                return
            from dm_control.rl.control import PhysicsError

            names = [n for n, g in zip(mujoco.mjtWarning.__members__, grew, strict=False) if g]
            raise PhysicsError(
                f"MuJoCo warned {', '.join(names)} during the step: the simulation diverged "
                "(e.g. an extreme action or state). Reset the env."
            )

    def _observation(self) -> np.ndarray:
        if self._fast_observe is not None:
            return self._fast_observe(self._physics)
        obs = self._dm_task.get_observation(self._physics)
        return np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in obs.values()]).astype(
            np.float32
        )

    def _step_index(self) -> int:
        return round(float(self._physics.data.time) / self._dt)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("This DMCEnv has been closed; create a new one with gym.make(...).")
