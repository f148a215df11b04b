"""Model folders: exact round trip, atomic saves and every corruption case -> CheckpointError."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from bfm_gym.models.fb import BFM, CheckpointError, FBConfig, FBModel, ModelMetadata
from bfm_gym.models import checkpoint as folders
from bfm_gym.models.fb import checkpoint as ckpt


@pytest.fixture
def bfm() -> BFM:
    torch.manual_seed(0)
    model = FBModel(FBConfig.preset("walker", "tiny"), obs_dim=5, action_dim=2)
    model.finalize(torch.randn(300, 5))
    meta = ModelMetadata(domain="walker", dataset_id="synthetic/point", dataset_hash="abc", training_steps=12,
                         obs_low=[-1.0] * 5, obs_high=[1.0] * 5, action_low=[-1.0] * 2, action_high=[1.0] * 2,
                         extra={"note": "test"})  # fmt: skip
    return BFM(model, meta)


@pytest.fixture
def saved(bfm: BFM, tmp_path: Path) -> Path:
    return bfm.save(tmp_path / "model")


def test_round_trip_is_exact(bfm: BFM, saved: Path) -> None:
    assert sorted(p.name for p in saved.iterdir()) == [
        "config.json",
        "model.safetensors",
    ]  # no pickle files
    loaded = BFM.load(saved)
    for k, v in bfm.model.state_dict().items():
        assert torch.equal(v, loaded.model.state_dict()[k]), k
    rng = np.random.default_rng(0)
    obs, action = (
        rng.normal(size=(7, 5)).astype(np.float32),
        rng.uniform(-1, 1, (7, 2)).astype(np.float32),
    )
    z = bfm.sample_z(7, seed=0)
    for name, args in [("act", (obs, z)), ("backward", (obs,)), ("phi", (obs,)), ("forward", (obs, action, z)),
                       ("q", (obs, action, z)), ("infer_z", (obs, obs[:, 0])), ("goal_z", (obs,)), ("project", (z,))]:  # fmt: skip
        np.testing.assert_array_equal(
            getattr(bfm, name)(*args), getattr(loaded, name)(*args), err_msg=name
        )
    np.testing.assert_array_equal(
        bfm.act(obs, z, noise=True, seed=3), loaded.act(obs, z, noise=True, seed=3)
    )
    np.testing.assert_array_equal(bfm.cov, loaded.cov)
    assert loaded.config == bfm.config
    assert loaded.metadata.replace(bfm_gym_version=None) == bfm.metadata
    assert loaded.cov_finalized


def test_config_json_records_what_the_format_promises(saved: Path) -> None:
    data = json.loads((saved / "config.json").read_text())
    assert data["format"] == "bfm_gym.fb" and data["format_version"] == ckpt.FORMAT_VERSION
    assert set(data) >= {
        "bfm_gym_version",
        "model",
        "fb_aware",
        "spaces",
        "domain",
        "dataset",
        "training_steps",
        "cov",
    }
    assert data["fb_aware"] == {"ar_blocks": 1, "actor_loss": "td3"}
    assert data["dataset"] == {"id": "synthetic/point", "hash": "abc"}
    assert data["cov"] == {"finalized": True, "samples": 300}
    assert data["model"]["obs_dim"] == 5 and data["model"]["config"]["z_dim"] == 8


def test_save_replaces_existing_folder_atomically(
    bfm: BFM, saved: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = (saved / "model.safetensors").read_bytes()

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(folders, "write_safetensors", boom)  # where model folders are written
    with pytest.raises(OSError, match="disk full"):
        bfm.save(saved)
    assert (saved / "model.safetensors").read_bytes() == before  # old folder untouched
    assert [p.name for p in saved.parent.iterdir()] == ["model"]  # no temp folders left
    monkeypatch.undo()
    bfm.save(saved)  # overwriting works
    assert [p.name for p in saved.parent.iterdir()] == ["model"]
    BFM.load(saved)


def _edit_json(folder: Path, edit) -> None:
    data = json.loads((folder / "config.json").read_text())
    edit(data)
    (folder / "config.json").write_text(json.dumps(data))


def _edit_weights(folder: Path, edit) -> None:
    tensors = load_file(str(folder / "model.safetensors"))
    edit(tensors)
    save_file(tensors, str(folder / "model.safetensors"))


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(
        CheckpointError, match=r"no folder at .*nowhere; pass the folder written by a model's save\(\) or bfm-gym pretrain"
    ):
        BFM.load(tmp_path / "nowhere")


def test_file_instead_of_folder(saved: Path) -> None:
    with pytest.raises(CheckpointError, match=r"is a file, not a model folder; pass its folder"):
        BFM.load(saved / "model.safetensors")


@pytest.mark.parametrize("name", ["config.json", "model.safetensors"])
def test_missing_file(saved: Path, name: str) -> None:
    (saved / name).unlink()
    with pytest.raises(
        CheckpointError, match=rf"{name} is missing in .*; the folder is incomplete, save it again"
    ):
        BFM.load(saved)


def test_bad_json(saved: Path) -> None:
    (saved / "config.json").write_text('{"format": "bfm_gym.fb", ')
    with pytest.raises(
        CheckpointError,
        match=r"config.json is not valid JSON \(.* at line 1 column \d+\); restore it",
    ) as info:
        BFM.load(saved)
    assert isinstance(info.value.__cause__, json.JSONDecodeError)


def test_json_not_an_object(saved: Path) -> None:
    (saved / "config.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="must hold a JSON object, found list"):
        BFM.load(saved)


def test_missing_field(saved: Path) -> None:
    _edit_json(saved, lambda d: d["model"].pop("obs_dim"))
    with pytest.raises(CheckpointError, match=r"required field 'model.obs_dim' is missing"):
        BFM.load(saved)


def test_unknown_format_version(saved: Path) -> None:
    _edit_json(saved, lambda d: d.update(format_version=99))
    with pytest.raises(
        CheckpointError,
        match=r"format_version 99 is not supported by bfm_gym .* \(supported: 1\); .* install that version",
    ):
        BFM.load(saved)


def test_invalid_model_config(saved: Path) -> None:
    _edit_json(saved, lambda d: d["model"]["config"].update(zdim=3))
    with pytest.raises(
        CheckpointError,
        match=r"invalid model.config \(unknown FBConfig field 'zdim'; did you mean 'z_dim'\?",
    ):
        BFM.load(saved)


def test_missing_key(saved: Path) -> None:
    _edit_weights(saved, lambda t: t.pop("actor.mlp.0.weight"))
    with pytest.raises(
        CheckpointError,
        match=r"missing key\(s\) 'actor.mlp.0.weight'; the weights do not belong to the architecture",
    ):
        BFM.load(saved)


def test_extra_key(saved: Path) -> None:
    _edit_weights(saved, lambda t: t.update({"target_forward_map.mlp.0.weight": torch.zeros(2)}))
    with pytest.raises(
        CheckpointError, match=r"unexpected extra key\(s\) 'target_forward_map.mlp.0.weight'"
    ):
        BFM.load(saved)


def test_shape_mismatch(saved: Path) -> None:
    _edit_weights(saved, lambda t: t.update(cov=torch.eye(9)))
    with pytest.raises(
        CheckpointError, match=r"shape mismatch for cov \(expected \(8, 8\), found \(9, 9\)\)"
    ):
        BFM.load(saved)


def test_architecture_mismatch_between_json_and_weights(saved: Path) -> None:
    _edit_json(saved, lambda d: d["model"]["config"].update(b_hidden_dim=64))
    with pytest.raises(
        CheckpointError,
        match=r"shape mismatch for backward_map.net.0.weight \(expected \(64, 5\), found \(32, 5\)\)",
    ):
        BFM.load(saved)


def test_truncated_weights(saved: Path) -> None:
    data = (saved / "model.safetensors").read_bytes()
    (saved / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(
        CheckpointError,
        match=r"model.safetensors is truncated or corrupted \(.*\); copy or download it again",
    ) as info:
        BFM.load(saved)
    assert info.value.__cause__ is not None


def test_garbage_weights(saved: Path) -> None:
    (saved / "model.safetensors").write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        BFM.load(saved)


def test_nan_weights(saved: Path) -> None:
    _edit_weights(saved, lambda t: t["actor.mlp.0.bias"].fill_(float("nan")))
    with pytest.raises(CheckpointError, match=r"'actor\.mlp\.0\.bias' holds NaN or inf"):
        BFM.load(saved)


def test_checkpoint_error_is_a_value_error() -> None:
    assert issubclass(CheckpointError, ValueError)


def test_infinite_space_bounds_round_trip(bfm: BFM, tmp_path: Path) -> None:
    meta = bfm.metadata.replace(obs_low=np.full(5, -np.inf), obs_high=np.full(5, np.inf))
    path = BFM(bfm.model, meta).save(tmp_path / "inf")
    data = json.loads((path / "config.json").read_text())  # strict JSON: no Infinity literal
    assert data["spaces"]["obs_low"] == ["-inf"] * 5
    loaded = BFM.load(path)
    assert loaded.metadata.obs_low == [-np.inf] * 5 and loaded.metadata.obs_high == [np.inf] * 5
