"""Environments: dm_control domains with relabelable tasks, as Gymnasium envs, and any other
Gymnasium env with continuous actions (:mod:`bfm_gym.envs.gym_env`)."""

from bfm_gym.envs.domains import DOMAINS, CoverageAxis, Domain, get_domain, register_domain
from bfm_gym.envs.gym_env import EnvInfo, GymEnv, make_gym_env, make_task_env
from bfm_gym.envs.registration import BUILTIN_TASKS, env_id, register_envs, task_name
from bfm_gym.envs.tasks import RewardFn, Task, get_task, goal_task, list_tasks, register_task


def make_env(domain: str, task=None, **kwargs):
    """Builds a :class:`~bfm_gym.envs.dmc_env.DMCEnv` directly (no Gymnasium wrappers).

    ``gym.make(env_id(domain, task))`` gives the same env with Gymnasium's
    order-enforcing and checking wrappers.
    """
    from bfm_gym.envs.dmc_env import DMCEnv

    return DMCEnv(domain, task, **kwargs)


__all__ = [
    "BUILTIN_TASKS",
    "DOMAINS",
    "CoverageAxis",
    "Domain",
    "EnvInfo",
    "GymEnv",
    "RewardFn",
    "Task",
    "env_id",
    "get_domain",
    "get_task",
    "goal_task",
    "list_tasks",
    "make_env",
    "make_gym_env",
    "make_task_env",
    "register_domain",
    "register_envs",
    "register_task",
    "task_name",
]
