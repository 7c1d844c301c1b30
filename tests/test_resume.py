"""Kill anywhere, resume, same result: a real ``autoaug`` process is killed with SIGKILL in the
middle of an epoch (or of an optuna trial), resumed from the command line with ``--resume``,
and compared with an uninterrupted run of the same command on CPU.

Checkpoints are written at the end of each epoch, so a run killed mid-epoch resumes from the
last epoch's checkpoint and redoes the epoch it was in; the end result must be identical:
policy.json, history.json, metrics.jsonl (less its timing fields), config.yaml and the
model's weights (``torch.equal``). An optuna search resumes by joining its study: the killed
trial is failed, not counted, and the study ends with exactly ``n_trials`` finished trials.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

TIMING = {"seconds", "images_per_s", "start", "complete", "worker"}
SMALL = [
    "--dataset",
    "glyphs",
    "--train-size",
    "256",
    "--batch-size",
    "32",
    "--device",
    "cpu",
    "--no-progress",
]
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def _start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "autoaug", *args], env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def _run(*args: str) -> str:
    proc = _start(*args)
    out, err = proc.communicate(timeout=900)
    assert proc.returncode == 0, err[-3000:]
    return out


def _lines(path: Path) -> int:
    return path.read_text().count("\n") if path.exists() else 0


def _kill_mid_epoch(out: Path, *args: str, after_lines: int = 1, delay: float = 0.5) -> None:
    """Start ``autoaug ARGS --out OUT``; once metrics.jsonl has ``after_lines`` lines (that
    many epochs, or trials, are done), let it run ``delay`` seconds into the next, then SIGKILL."""
    proc = _start(*args, "--out", str(out))
    deadline = time.time() + 900
    while time.time() < deadline and proc.poll() is None and _lines(out / "metrics.jsonl") < after_lines:
        time.sleep(0.05)
    time.sleep(delay)
    assert proc.poll() is None, "the run ended before it could be killed: " + proc.communicate()[1][-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def _records(path: Path) -> list[dict]:
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def _same_run(a: Path, b: Path, files: tuple[str, ...]) -> None:
    assert _records(a / "metrics.jsonl") == _records(b / "metrics.jsonl")
    config_a, config_b = (yaml.safe_load((d / "config.yaml").read_text()) for d in (a, b))
    assert config_a | {"out": None} == config_b | {"out": None}
    for name in files:
        assert json.loads((a / name).read_text()) == json.loads((b / name).read_text()), name
    wa, wb = (torch.load(d / "model.pt", weights_only=True) for d in (a, b))
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa), "the resumed model's weights differ"


@pytest.mark.slow
def test_train_killed_mid_epoch_resumes_to_the_same_run(tmp_path):
    args = ["train", *SMALL, "--policy", "trivialaugment", "--epochs", "3"]
    _run(*args, "--out", str(tmp_path / "full"))
    cut = tmp_path / "cut"
    _kill_mid_epoch(cut, *args)
    assert _lines(cut / "metrics.jsonl") < 3
    _run("train", "--out", str(cut), "--resume")  # the run's own settings, from its checkpoint
    _same_run(tmp_path / "full", cut, ())


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["online", "search"])
def test_bilevel_search_killed_mid_epoch_resumes_to_the_same_run(tmp_path, mode):
    args = ["search", "--method", "bilevel", "--mode", mode, *SMALL, "--epochs", "3", "--probe-size", "32"]
    if mode == "search":  # the proxy trains 3 epochs on half the images
        args += ["--epochs", "3", "--proxy-epochs", "1", "--proxy-data", "0.5"]
    _run(*args, "--out", str(tmp_path / "full"))
    cut = tmp_path / "cut"
    _kill_mid_epoch(cut, *args)
    assert _lines(cut / "metrics.jsonl") < 3
    resume = ["--epochs", "3"] if mode == "search" else []  # its checkpoint holds the proxy's epochs
    _run("search", "--out", str(cut), "--resume", *resume)
    _same_run(tmp_path / "full", cut, ("policy.json", "history.json"))


@pytest.mark.slow
def test_mcmc_search_killed_mid_epoch_resumes_to_the_same_run(tmp_path):
    args = ["search", "--method", "mcmc", *SMALL, "--epochs", "3", "--space", "standard"]
    _run(*args, "--out", str(tmp_path / "full"))
    cut = tmp_path / "cut"
    _kill_mid_epoch(cut, *args)
    assert _lines(cut / "metrics.jsonl") < 3
    _run("search", "--out", str(cut), "--resume")
    _same_run(tmp_path / "full", cut, ("policy.json", "history.json"))


@pytest.mark.slow
def test_optuna_search_killed_mid_trial_loses_no_trial_and_counts_none_twice(tmp_path):
    import optuna

    # Short proxy trainings per trial (the per-op space), so that a trial can be killed mid-way.
    args = ["search", "--method", "optuna", *SMALL, "--n-trials", "4", "--trial-epochs", "2", "--pruner", "none",
            "--heartbeat", "1", "--optuna-space", "policy", "--proxy", "train"]  # fmt: skip
    _run(*args, "--out", str(tmp_path / "full"))
    cut = tmp_path / "cut"
    _kill_mid_epoch(cut, *args, after_lines=1, delay=1.0)  # trial 0 done, trial 1 under way
    _run("search", "--method", "optuna", "--out", str(cut), "--resume")

    def trials(d: Path) -> list[optuna.trial.FrozenTrial]:
        study = optuna.load_study(study_name="autoaug-glyphs-policy", storage=f"sqlite:///{d / 'study.db'}")
        return study.get_trials(deepcopy=False)

    full, resumed = trials(tmp_path / "full"), trials(cut)
    states = [t.state.name for t in resumed]
    # The killed trial is failed (not left running, not counted); exactly n_trials finished.
    assert states.count("COMPLETE") == 4 and states.count("RUNNING") == 0, states
    assert states.count("FAIL") == 1 and states[1] == "FAIL", states
    # No trial counted twice: each finished trial's proposal appears once, and the trials that
    # ran in both studies (before the kill) measured the same.
    done = [t for t in resumed if t.state.name == "COMPLETE"]
    assert len({json.dumps(t.params, sort_keys=True) for t in done}) == 4
    assert done[0].params == full[0].params and done[0].value == full[0].value
    rows = _records(cut / "metrics.jsonl")
    assert [r["state"] for r in rows] == [s.lower() for s in states]
