"""``bfm-gym video``: render a BFM acting with one latent z on a task, as a GIF or MP4.

Registered by the built-in plugin's ``register_commands`` hook. A thin layer over
:func:`bfm_gym.evaluation.video.render_rollout` and :func:`~bfm_gym.evaluation.video.write_video`.
"""

from __future__ import annotations

from pathlib import Path

import click

from bfm_gym.cli.framework import COUNT, OUT_FILE, SEED

__all__ = ["video"]


def _parse_z(text: str) -> list[float]:
    try:
        return [float(v) for v in text.replace(" ", "").split(",") if v != ""]
    except ValueError as exc:
        raise click.BadParameter(
            f"expected comma-separated numbers, got {text!r}", param_hint="--z"
        ) from exc


@click.command("video")
@click.option("--model", "model_name", default=None, help="Shipped model name or model folder.")
@click.option("--task", default=None,
              help="Task, as 'run' or 'walker-run'; for a model of a Gymnasium env, a task of its id "
                   "('native': the env's own reward).")
@click.option("--run", "run_dir", default=None, type=click.Path(path_type=Path, file_okay=False),
              help="Instead of --model/--task/--z: an `adapt` run folder; renders its policy at the "
                   "zero-shot z and after every --every episodes, side by side.")
@click.option("--every", type=COUNT, default=5, show_default=True, help="With --run: episodes between panels.")
@click.option(
    "--z",
    "z_text",
    default=None,
    metavar="Z1,Z2,...",
    help="The latent: z_dim comma-separated numbers (projected onto the sphere).",
)
@click.option(
    "--z-from-task",
    is_flag=True,
    help="Infer z zero-shot for --task from the model's shipped inference samples.",
)
@click.option("--steps", type=COUNT, default=300, show_default=True, help="Env steps to render.")
@click.option(
    "--out",
    default=None,
    type=OUT_FILE,
    help="Output file: .gif (Pillow) or .mp4 (needs the [video] extra).",
)
@click.option("--seed", type=SEED, default=0, show_default=True, help="Reset seed.")
@click.option("--width", type=COUNT, default=320, show_default=True)
@click.option("--height", type=COUNT, default=240, show_default=True)
@click.option("--camera", type=int, default=None,
              help="MuJoCo camera id (default: 0 for bfm_gym domains, the env's own for Gymnasium envs).")
def video(model_name: str | None, task: str | None, run_dir: Path | None, every: int, z_text: str | None,
          z_from_task: bool, steps: int, out: Path | None, seed: int, width: int, height: int,
          camera: int | None) -> None:  # fmt: skip
    """Render the policy pi(a | s, z) of a model on a task with a fixed latent z.

    With --run RUN: the policy of an `adapt` run at several points, side by side.
    """
    from bfm_gym.evaluation.video import render_rollout, write_video

    if run_dir is not None:
        from bfm_gym.experiments.run_video import render_run

        if model_name or task or z_text or z_from_task:
            raise click.UsageError("--run takes the model, task and z from the run; drop --model/--task/--z.")
        if out is not None and out.suffix.lower() not in (".gif", ".mp4"):
            raise click.BadParameter(f"{out.name} must end in .gif or .mp4", param_hint="--out")
        info = render_run(run_dir, out, every=every, steps=steps)
        click.echo(f"wrote {out or run_dir / info['file']}: {info['panels']} panels "
                   f"({', '.join(info['captions'])}), returns {info['returns']}")
        return
    if model_name is None or task is None or out is None:
        raise click.UsageError("Give --model, --task and --out (or --run RUN).")
    if (z_text is None) == (not z_from_task):
        raise click.UsageError("Give exactly one of --z Z1,Z2,... or --z-from-task.")
    if out.suffix.lower() not in (".gif", ".mp4"):
        raise click.BadParameter(f"{out.name} must end in .gif or .mp4", param_hint="--out")
    if z_from_task:
        z = _task_z(model_name, task)
    else:
        z = _parse_z(z_text or "")
    frames, total, fps = render_rollout(model_name, task, z, steps=steps, seed=seed,
                                        width=width, height=height, camera_id=camera)  # fmt: skip
    path = write_video(frames, out, fps)
    click.echo(f"wrote {path}: {len(frames)} frames at {fps:g} fps, return {total:.1f}")


def _task_z(model_name: str, task: str) -> list[float]:
    """Zero-shot z for ``task`` from the model's shipped inference samples."""
    from bfm_gym.envs import get_task, task_name
    from bfm_gym.evaluation.zero_shot import task_z
    from bfm_gym.pretrained import load

    bfm = load(model_name)
    domain = bfm.metadata.domain
    if domain is None:
        raise ValueError(f"Model {model_name} records no domain; give --z instead.")
    name = task_name(domain, task)
    get_task(domain, name)  # clear error listing the valid tasks
    samples = bfm.samples
    if samples is None:
        raise ValueError(
            f"Model {model_name} ships no inference samples, so --z-from-task cannot infer z; "
            "give --z Z1,Z2,... instead."
        )
    return task_z(bfm, samples, name).tolist()
