"""FBConfig: presets, validation and from_dict."""

from __future__ import annotations

import pytest

from bfm_gym.models.fb import DOMAINS, PRESET_SIZES, FBConfig
import itertools


@pytest.mark.parametrize("size", PRESET_SIZES)
@pytest.mark.parametrize("domain", DOMAINS)
def test_presets_are_valid_and_round_trip(domain: str, size: str) -> None:
    cfg = FBConfig.preset(domain, size)
    assert FBConfig.from_dict(cfg.to_dict()) == cfg


def test_paper_preset_matches_reference_table() -> None:
    walker, cheetah = FBConfig.preset("walker", "paper"), FBConfig.preset("cheetah", "paper")
    quadruped, maze = (
        FBConfig.preset("quadruped", "paper"),
        FBConfig.preset("point_mass_maze", "paper"),
    )
    assert (walker.z_dim, cheetah.z_dim, quadruped.z_dim, maze.z_dim) == (100, 50, 50, 100)
    assert (
        walker.f_hidden_dim,
        walker.actor_hidden_dim,
        walker.b_hidden_dim,
        walker.b_hidden_layers,
    ) == (1024, 1024, 256, 2)
    assert walker.batch_size == 1024 and walker.gamma == 0.98 and walker.lr_b == 1e-4
    assert (maze.gamma, maze.lr_f, maze.lr_b, maze.lr_actor) == (0.99, 1e-4, 1e-6, 1e-6)
    assert (walker.tau, walker.ensemble, walker.actor_std, walker.stddev_clip) == (
        0.01,
        2,
        0.2,
        0.3,
    )
    assert (
        walker.ortho_coef,
        walker.train_goal_ratio,
        walker.fb_pessimism,
        walker.actor_pessimism,
    ) == (1.0, 0.5, 0.0, 0.5)


def test_preset_overrides_and_alias() -> None:
    cfg = FBConfig.preset("pointmass", "tiny", ar_blocks=2)
    assert cfg.ar_blocks == 2 and cfg.gamma == 0.99


def test_from_dict_rejects_unknown_key_with_suggestion() -> None:
    with pytest.raises(ValueError, match=r"unknown FBConfig field 'zdim'; did you mean 'z_dim'\?"):
        FBConfig.from_dict({"zdim": 8})
    with pytest.raises(ValueError, match="did you mean 'actor_pessimism'"):
        FBConfig.from_dict({"actor_pesimism": 0.5})


def test_unknown_preset_names_suggest() -> None:
    with pytest.raises(ValueError, match="did you mean 'walker'"):
        FBConfig.preset("waker", "cpu")
    with pytest.raises(ValueError, match="did you mean 'tiny'"):
        FBConfig.preset("walker", "tiney")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"gamma": 1.0}, r"gamma must be in \(0, 1\)"),
        ({"z_dim": 0}, "z_dim must be a positive int"),
        ({"batch_size": 1}, "batch_size must be an int >= 2"),
        ({"tau": 1.5}, r"tau must be in \[0, 1\]"),
        ({"actor_loss": "sac"}, "actor_loss expects one of"),
        ({"amp": "fp16"}, "amp expects one of"),
        (
            {"ar_blocks": 3, "ar_z_groups": 5, "batch_size": 64},
            "ar_z_groups .* must divide batch_size",
        ),
        ({"ar_blocks": 9, "z_dim": 8}, "ar_blocks .* cannot exceed z_dim"),
        ({"f_hidden_dim": 33}, "f_hidden_dim must be even"),
    ],
)
def test_validation_messages(changes: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        FBConfig.preset("walker", "tiny", **changes)


def test_every_field_has_a_docstring() -> None:
    import ast
    import dataclasses
    import inspect

    from bfm_gym.models.fb import config as module

    tree = ast.parse(inspect.getsource(module.FBConfig))
    body = tree.body[0].body  # type: ignore[attr-defined]
    documented = {
        stmt.target.id
        for stmt, nxt in itertools.pairwise(body)
        if isinstance(stmt, ast.AnnAssign)
        and isinstance(nxt, ast.Expr)
        and isinstance(nxt.value, ast.Constant)
    }
    assert {f.name for f in dataclasses.fields(FBConfig)} <= documented


def test_block_sizes() -> None:
    assert FBConfig.preset("walker", "tiny", ar_blocks=3).block_sizes == (3, 3, 2)


def test_presets_read_the_domain_record(monkeypatch: pytest.MonkeyPatch) -> None:
    """A domain's settings for each family live on its record (``Domain.presets``): a plugin's
    domain gets every family's presets, with its own settings on top of the size defaults."""
    from bfm_gym.envs import Domain, get_domain
    from bfm_gym.models.hilp import HILPConfig
    from bfm_gym.plugins import load_plugins

    stilts = Domain("stilts", get_domain("walker").load,
                    presets={"fb": {"gamma": 0.9, "cpu": {"z_dim": 32}}, "hilp": {"hilp_gamma": 0.9}})
    monkeypatch.setitem(load_plugins().domains, "stilts", (stilts, "a-plugin"))
    cpu = FBConfig.preset("stilts", "cpu")
    assert (cpu.gamma, cpu.z_dim) == (0.9, 32)
    assert cpu.replace(gamma=0.98, z_dim=50) == FBConfig.preset("quadruped", "cpu")  # the size defaults
    assert FBConfig.preset("stilts", "paper").z_dim == 50  # "cpu" settings stay with that size
    assert HILPConfig.preset("stilts", "cpu").hilp_gamma == 0.9
    maze = FBConfig.preset("point_mass_maze", "cpu")  # the built-ins' own, on their records
    assert (maze.z_dim, maze.lr_b, maze.lr_actor, maze.gamma) == (100, 1e-4, 1e-4, 0.99)
    cheetah = FBConfig.preset("cheetah", "cpu")  # the shipped cheetah's recipe, at the cpu size only
    assert (cheetah.ema_tau, cheetah.actor_bc) == (1e-4, 0.1)
    assert cheetah.replace(ema_tau=0.0, actor_bc=0.0) == FBConfig.preset("quadruped", "cpu")
    assert FBConfig.preset("cheetah", "paper").actor_bc == 0.0
    with pytest.raises(ValueError, match="did you mean 'stilts'"):
        FBConfig.preset("stilt", "cpu")
