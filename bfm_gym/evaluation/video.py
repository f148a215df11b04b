"""Videos of a BFM acting with a fixed latent: frames from the latent-action env, GIF or MP4.

``bfm-gym video`` is a thin layer over :func:`render_rollout` and :func:`write_video`; other
commands (e.g. adaptation, to show the policy across episodes) call the same two functions and
concatenate the frames of several rollouts.

GIF needs only Pillow (installed with matplotlib). MP4 needs ``imageio`` and
``imageio-ffmpeg`` (``pip install 'bfm-gym[video]'``).
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bfm_gym.errors import UserError

__all__ = ["VideoError", "render_rollout", "write_video"]

GIF_MAX_FPS = 25.0
"""GIF frame delays are whole centiseconds and viewers slow down delays under 20 ms, so GIFs
keep every k-th frame to stay at or under this rate (same duration, fewer frames)."""


class VideoError(UserError, RuntimeError):
    """A video cannot be written; the message says why and what to install or change."""


def render_rollout(
    model: Any,
    task: str,
    z: Sequence[float] | np.ndarray,
    *,
    steps: int = 300,
    seed: int = 0,
    width: int = 320,
    height: int = 240,
    camera_id: int | None = None,
    domain: str | None = None,
    render_every: int = 1,
) -> tuple[list[np.ndarray], float, float]:
    """Runs ``pi(a | s, z)`` with one latent on a bfm_gym task and renders every step.

    Args:
        model: Shipped name, model folder or loaded BFM.
        task: Task name (``"run"``) or ``"{domain}-{task}"`` (``"walker-run"``); for a model
            of a Gymnasium env, a task of its id (``"native"``: the env's own reward).
        z: ``(z_dim,)`` latent (projected onto the sphere by the wrapper).
        steps: Env steps (stops earlier when the episode ends).
        seed: Reset seed.
        width: Frame width.
        height: Frame height.
        camera_id: MuJoCo camera; None: camera 0 of a bfm_gym domain, a Gymnasium env's own default
            (Reacher-v5 has no fixed camera).
        domain: The env's domain; defaults to the model's.
        render_every: Render every k-th step only (rendering costs far more than a step
            on a CPU); ``fps`` is divided by k so the video plays in real time.

    Returns:
        ``(frames, episode_return, fps)``: uint8 ``(height, width, 3)`` frames after reset
        and after every ``render_every``-th step (``steps + 1`` with the default 1), the
        summed task reward of all steps, and the frames per second of ``frames``.

    Raises:
        ValueError: Unknown model or task, a z of the wrong size, or an all-zero z.
    """
    from bfm_gym.envs.dmc_env import DMCEnv
    from bfm_gym.envs.domains import is_gym_domain
    from bfm_gym.envs.registration import task_name
    from bfm_gym.wrappers.latent import LatentActionWrapper, resolve_model

    bfm, _ = resolve_model(model)
    domain = domain or bfm.metadata.domain
    if domain is None:
        raise ValueError("The model records no domain; pass domain=... to render it.")
    name = task_name(domain, task)
    zz = np.asarray(z, dtype=np.float32)
    if zz.shape != (bfm.z_dim,):
        raise ValueError(
            f"z has {zz.size} numbers; the model's latents have z_dim={bfm.z_dim} numbers."
        )
    if not np.any(zz):
        raise ValueError("z is all zeros: it has no direction; give a nonzero latent.")
    if render_every < 1:
        raise ValueError(f"render_every must be >= 1 step; got {render_every}.")
    if is_gym_domain(domain):
        inner = _gym_render_env(bfm, domain, name, width, height, camera_id)
    else:
        inner = DMCEnv(domain, name, render_mode="rgb_array",
                       render_kwargs={"width": width, "height": height,
                                      "camera_id": 0 if camera_id is None else camera_id})  # fmt: skip
    env = LatentActionWrapper(inner, bfm, z_hold=1, action_map="raw", record_transitions=False)
    try:
        env.reset(seed=seed)
        frames = [env.render()]
        total = 0.0
        for t in range(1, steps + 1):
            _, reward, terminated, truncated, _ = env.step(zz)
            total += reward
            if t % render_every == 0:
                frames.append(env.render())
            if terminated or truncated:
                break
        fps = float(inner.metadata.get("render_fps", 30)) / render_every
    finally:
        env.close()
    return frames, total, fps


def _gym_render_env(bfm: Any, domain: str, task: str, width: int, height: int, camera_id: int | None) -> Any:
    """The model's Gymnasium env (its recorded id, kwargs and key order) rendering RGB frames.
    The frame size and camera go to ``gym.make`` where the env takes them (MuJoCo envs do)."""
    from bfm_gym.envs.gym_env import env_info_of, make_gym_env
    from bfm_gym.envs.gym_spec import EnvInfo

    info = env_info_of(bfm) or EnvInfo(id=domain)
    size: dict[str, Any] = {"width": width, "height": height}
    if camera_id is not None:
        size["camera_id"] = camera_id

    def make(extra: dict[str, Any]) -> Any:
        return make_gym_env(info.id, task, env_kwargs={**info.kwargs, **extra}, obs_keys=info.obs_keys,
                            max_episode_steps=info.max_episode_steps, render_mode="rgb_array")

    try:
        return make(size)
    except ValueError as exc:
        if "gym.make" not in str(exc):
            raise
        return make({})  # an env that takes no frame size renders at its own


def write_video(frames: Sequence[np.ndarray], path: str | os.PathLike[str], fps: float) -> Path:
    """Writes frames as an animated GIF (Pillow) or an MP4 (imageio + imageio-ffmpeg).

    Args:
        frames: uint8 ``(height, width, 3)`` frames.
        path: ``*.gif`` or ``*.mp4``; parent folders are created.
        fps: Frames per second of ``frames`` (GIFs drop frames to stay <= 25 fps).

    Returns:
        The path written.

    Raises:
        VideoError: Another extension, no frames, or MP4 without imageio-ffmpeg.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise VideoError(f"cannot write {path.name}: the file must end in .gif or .mp4.")
    if not frames:
        raise VideoError("no frames to write.")
    if suffix == ".mp4":
        missing = [m for m in ("imageio", "imageio_ffmpeg") if importlib.util.find_spec(m) is None]
        if missing:
            raise VideoError(
                f"writing MP4 needs imageio and imageio-ffmpeg ({', '.join(missing)} not "
                "installed): pip install 'bfm-gym[video]', or write a .gif instead."
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".mp4":
        import imageio.v2 as imageio

        imageio.mimwrite(str(path), list(frames), fps=fps, macro_block_size=1)
        return path
    from PIL import Image

    every = max(1, math.ceil(fps / GIF_MAX_FPS))
    kept = [Image.fromarray(np.asarray(f, dtype=np.uint8)) for f in frames[::every]]
    duration_ms = round(1000.0 * every / fps / 10) * 10  # GIF delays are centiseconds
    kept[0].save(path, save_all=True, append_images=kept[1:], duration=max(duration_ms, 20),
                 loop=0, optimize=False)  # fmt: skip
    return path
