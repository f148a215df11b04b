"""benchmarks/checkpoint_sweep.py: ``--follow`` started before its pretrain run."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from benchmark_script import load_benchmark

checkpoint_sweep = load_benchmark("checkpoint_sweep")


def test_follow_waits_for_the_run_record(tmp_path: Path, capsys) -> None:
    run_json = tmp_path / "run" / "training" / "run.json"

    def start_run() -> None:
        time.sleep(0.2)
        run_json.parent.mkdir(parents=True)
        run_json.write_text("{}")

    writer = threading.Thread(target=start_run)
    writer.start()
    checkpoint_sweep.wait_for_run(run_json, poll_s=0.02)
    writer.join()
    assert run_json.is_file()
    assert "waiting for" in capsys.readouterr().out
    checkpoint_sweep.wait_for_run(run_json, poll_s=0.02)  # already there: returns at once, silently
    assert capsys.readouterr().out == ""
