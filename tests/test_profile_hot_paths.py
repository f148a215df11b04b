"""benchmarks/profile_hot_paths.py: its target list is checked before anything is profiled."""

from __future__ import annotations

import sys

import pytest


@pytest.mark.parametrize(("targets", "named"), [("wrapper,nope", "nope"), ("", "(none given)")])
def test_bad_targets_are_refused_with_the_valid_names(targets: str, named: str, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from benchmark_script import load_benchmark

    module = load_benchmark("profile_hot_paths")
    monkeypatch.setattr(sys, "argv", ["profile_hot_paths.py", "--targets", targets, "--out", "unused.json"])
    with pytest.raises(SystemExit) as exc:
        module.main()
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert f"unknown {named}" in err and "choose from wrapper, opti, opti_every_step, vector_workers2" in err
