"""``benchmarks/latent_vs_weights.py``: on a committed comparison holding both a latent adapter and
a fine-tuning one, its cross-folder head-to-head reproduces the comparison's own
(``aggregates.json``, ``latent_vs_weights``) at every budget; seeds of one method merge across
folders, and malformed entries fail with a message naming the fix."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest
from benchmark_script import BENCHMARKS, load_benchmark

RESULTS = BENCHMARKS / "results"


@pytest.fixture(scope="module")
def lvw() -> ModuleType:
    return load_benchmark("latent_vs_weights")


@pytest.mark.parametrize("folder", ["compare_maze_td3", "compare_walker_td3"])
def test_reproduces_the_comparisons_own_head_to_head(lvw: ModuleType, folder: str) -> None:
    path = RESULTS / folder
    spec = json.loads((path / "compare.json").read_text())
    own = json.loads((path / "aggregates.json").read_text())["latent_vs_weights"]
    latent = [a for a in spec["adapters"] if spec["acts"][a] == "latent"]
    checked = 0
    budgets = spec["checkpoints"]
    for budget in budgets:
        methods = {}
        for adapter in spec["adapters"]:
            acts, scores = lvw.run_scores(path, adapter, budget)
            assert acts == spec["acts"][adapter]
            methods[adapter] = {"acts": acts, "scores": scores}
        result = lvw.compare_domain(methods, reps=2000)
        assert result["strongest_weights"] == "sb3-td3-finetune"
        for adapter in latent:
            runs = sum(len(per_seed) for per_seed in methods[adapter]["scores"].values())
            if runs < len(spec["tasks"]) * len(spec["seeds"]):
                continue  # a run without an evaluation point yet: the report used its initial one
            mine = result["latent"][adapter]
            theirs = next(h for h in own if h["episodes"] == budget and h["latent"] == adapter)
            assert sorted(mine["tasks_won"]) == sorted(theirs["tasks_won"]), (budget, adapter)
            assert mine["tasks_compared"] == theirs["tasks_compared"]
            for key in ("value", "low", "high"):
                assert mine["p_improvement"][key] == pytest.approx(theirs["p_improvement"][key], abs=1e-12)
            checked += 1
    assert checked >= (len(latent) - 1) * len(budgets)  # all but LoLA at its early budgets


def test_merges_seeds_across_folders_and_refuses_bad_entries(lvw: ModuleType, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    src = RESULTS / "compare_walker_td3"
    # the same comparison split into two folders by seed: seeds 0 and 1-2
    for name, keep in (("a", {"0"}), ("b", {"1", "2"})):
        dst = tmp_path / name
        dst.mkdir()
        shutil.copy(src / "compare.json", dst / "compare.json")
        spec = json.loads((src / "compare.json").read_text())
        spec["seeds"] = sorted(int(s) for s in keep)
        (dst / "compare.json").write_text(json.dumps(spec))
        lines = (src / "results.csv").read_text().splitlines()
        header = lines[0].split(",")
        seed_col = header.index("seed")
        (dst / "results.csv").write_text("\n".join([lines[0]] + [ln for ln in lines[1:]
                                                                 if ln.split(",")[seed_col] in keep]) + "\n")
    out = tmp_path / "out.json"
    argv = ["latent_vs_weights.py", "--budget", "20", "--out", str(out),
            "--entry", f"walker/td3={tmp_path / 'a'}#sb3-td3-finetune",
            "--entry", f"walker/td3={tmp_path / 'b'}#sb3-td3-finetune",
            "--entry", f"walker/lola={src}#lola"]
    monkeypatch.setattr(sys, "argv", argv)
    lvw.main()
    merged = json.loads(out.read_text())
    td3 = merged["methods"]["walker"]["td3"]["scores"]
    whole = lvw.run_scores(src, "sb3-td3-finetune", 20)[1]
    assert {t: {int(s): v for s, v in per.items()} for t, per in td3.items()} == {
        t: {s: round(v, 4) for s, v in per.items()} for t, per in whole.items()}
    assert "| td3 (env) | 0,1,2 |" in merged["markdown"]
    # the same seed from two folders is refused
    monkeypatch.setattr(sys, "argv", argv[:5] + ["--entry", f"walker/td3={tmp_path / 'a'}#sb3-td3-finetune"] * 2
                        + argv[-2:])
    with pytest.raises(SystemExit, match="come from two folders"):
        lvw.main()
    with pytest.raises(SystemExit, match="DOMAIN/LABEL=FOLDER#ADAPTER"):
        lvw.parse_entry("walker=somewhere")
    with pytest.raises(SystemExit, match="has no adapter 'cem'"):
        lvw.run_scores(src, "cem", 20)
    capsys.readouterr()
