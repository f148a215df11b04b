"""The policy of an adaptation run at chosen points, side by side in one GIF or MP4.

``adapt(..., video_every=K)`` (``bfm-gym adapt --video-every K``) records z after every
episode (``records.jsonl``) and, at the end, renders one panel per chosen point: the
zero-shot z, z after every K-th episode, and the final z. Every panel starts from the
same state (the run's first evaluation start state) and holds its z fixed, so what
differs between panels is what the adapter learned. ``bfm-gym video --run RUN`` renders
the same panels afterwards from a finished run folder.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["policy_panels", "render_run", "write_panels"]

_CAPTION_PX = 18
PLAYBACK_FPS = 12.5
"""Frames per second of the video. Panels render every k-th step (rendering a frame costs
tens of milliseconds of CPU, a step well under one): k plays the episode in real time at
this rate, or faster when a panel would otherwise exceed :data:`MAX_PANEL_FRAMES`."""
MAX_PANEL_FRAMES = 125
"""At most this many frames per panel (about 10 s of video): long episodes play faster."""


def policy_panels(records: Sequence[dict[str, Any]], every: int,
                  zero_shot_z: np.ndarray | None) -> list[tuple[str, np.ndarray]]:
    """The ``(caption, z)`` of each panel: zero-shot, after every ``every`` episodes, final.

    Args:
        records: The run's records (rows carry ``z`` for latent adapters).
        every: Episodes between panels (>= 1).
        zero_shot_z: ``(z_dim,)`` zero-shot latent, or None to leave that panel out.

    Raises:
        ValueError: ``every < 1``, or no record carries a z.
    """
    if every < 1:
        raise ValueError(f"every must be >= 1 episode; got {every}.")
    rows = [r for r in records if "z" in r]
    if not rows:
        raise ValueError("The run's records carry no z (a weight fine-tuning adapter, or a run "
                         "made before z was recorded): nothing to render.")
    panels: list[tuple[str, np.ndarray]] = []
    if zero_shot_z is not None:
        panels.append(("zero-shot", np.asarray(zero_shot_z, dtype=np.float32)))
    chosen = [r for r in rows if (r["episode"] + 1) % every == 0]
    if not chosen or chosen[-1] is not rows[-1]:
        chosen.append(rows[-1])
    for r in chosen:
        panels.append((f"after {r['episode'] + 1} ep", np.asarray(r["z"], dtype=np.float32)))
    return panels


def _caption(frame: np.ndarray, text: str) -> np.ndarray:
    from PIL import Image, ImageDraw

    h, w = frame.shape[:2]
    img = Image.new("RGB", (w, h + _CAPTION_PX), "white")
    img.paste(Image.fromarray(frame), (0, _CAPTION_PX))
    ImageDraw.Draw(img).text((4, 3), text, fill="black")
    return np.asarray(img)


def write_panels(model: Any, task: str, panels: Sequence[tuple[str, np.ndarray]],
                 path: str | os.PathLike[str], *, seed: int, steps: int, width: int = 160,
                 height: int = 160, camera_id: int = 0) -> dict[str, Any]:
    """Renders each panel's z from reset ``seed`` for ``steps`` steps and tiles them left to right.

    Each panel is captioned with its label and the return of the rendered steps; a panel
    whose episode ends early keeps its last frame. Every k-th step is rendered, k =
    ``max(round(env fps / PLAYBACK_FPS), ceil(steps / MAX_PANEL_FRAMES))``, and the video
    plays at ``PLAYBACK_FPS`` (``speed`` in the result: 1 is real time).

    Args:
        model: Loaded BFM, shipped name or model folder.
        task: Task of the model's domain.
        panels: ``(caption, z)`` per panel, left to right.
        path: ``.gif`` or ``.mp4`` (MP4 needs ``bfm-gym[video]``).
        seed: Reset seed shared by every panel.
        steps: Env steps per panel.
        width: Panel width in pixels.
        height: Panel height in pixels (a caption strip is added above).
        camera_id: MuJoCo camera.

    Returns:
        ``{"file", "panels", "captions", "returns", "frames", "steps", "render_every", "speed",
        "seed"}`` (``frames``: frames per panel).
    """
    from bfm_gym.envs.dmc_env import DMCEnv
    from bfm_gym.wrappers.latent import resolve_model
    from bfm_gym.evaluation.video import render_rollout, write_video

    if not panels:
        raise ValueError("No panels to render.")
    bfm, _ = resolve_model(model)
    env_fps = float(DMCEnv(bfm.metadata.domain, task).metadata.get("render_fps", 30))
    every = max(1, round(env_fps / PLAYBACK_FPS), math.ceil(steps / MAX_PANEL_FRAMES))
    rendered, returns = [], []
    for _, z in panels:
        frames, total, _ = render_rollout(bfm, task, z, steps=steps, seed=seed, width=width,
                                            height=height, camera_id=camera_id, render_every=every)
        rendered.append(frames)
        returns.append(round(float(total), 3))
    n = max(len(f) for f in rendered)
    sep = np.full((height + _CAPTION_PX, 3, 3), 255, dtype=np.uint8)
    tiles = []
    for t in range(n):
        row = []
        for (caption, _), frames, ret in zip(panels, rendered, returns, strict=True):
            row.append(_caption(np.asarray(frames[min(t, len(frames) - 1)], dtype=np.uint8),
                                f"{caption}  R={ret:.1f}"))
            row.append(sep)
        tiles.append(np.concatenate(row[:-1], axis=1))
    out = write_video(tiles, path, PLAYBACK_FPS)
    return {"file": out.name, "panels": len(panels), "captions": [c for c, _ in panels],
            "returns": returns, "frames": n, "steps": steps, "render_every": every,
            "speed": round(PLAYBACK_FPS * every / env_fps, 3), "seed": int(seed)}


def render_run(run: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, *, every: int = 5,
               steps: int = 300) -> dict[str, Any]:
    """``bfm-gym video --run RUN``: the panels of a finished ``adapt`` run folder.

    Args:
        run: The run folder (``run.json`` and ``records.jsonl``).
        out: Output file (default ``RUN/policy.gif``).
        every: Episodes between panels.
        steps: Env steps per panel.

    Raises:
        ValueError: Not a run folder, a goal run, a model that cannot be loaded by the
            name the run recorded, or no z in the records.
    """
    import bfm_gym
    from bfm_gym.experiments.run_folder import evaluation_seeds, zero_shot_z

    folder = Path(run)
    try:
        args = json.loads((folder / "run.json").read_text())
        records = [json.loads(line) for line in (folder / "records.jsonl").read_text().splitlines() if line]
    except FileNotFoundError as exc:
        raise ValueError(f"{folder} is not an adapt run folder (no {Path(exc.filename).name}); "
                         "pass the --out of `bfm-gym adapt`.") from None
    spec = args["task"]
    if spec.get("task") is None:
        raise ValueError("This run adapted to a goal; only runs on a named task can be rendered.")
    if args["model"] == "<in-memory BFM>":
        raise ValueError("This run used an in-memory model; render it with write_panels(bfm, ...).")
    bfm = bfm_gym.load(args["model"])
    zs = zero_shot_z(bfm, spec, bfm.samples)
    panels = policy_panels(records, every, zs)
    cap = args.get("max_episode_steps")
    return write_panels(bfm, spec["task"], panels, out or folder / "policy.gif",
                        seed=evaluation_seeds(args["seed"], 1)[0], steps=min(cap or steps, steps))
