"""The trainer: a killed run resumes to the same metrics, NaN stops cleanly, configs resolve.
Two processes under torchrun: test_distributed.py."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from autoaug.cli import main
from autoaug.train import PolicyStep, TrainConfig, Trainer, TrainingDiverged

TINY = ["--dataset", "glyphs", "--train-size", "320", "--val-size", "0.2", "--batch-size", "64", "--device", "cpu",
        "--no-progress"]  # fmt: skip
TIMING = {"seconds", "images_per_s"}


def _records(path):
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def _cli(*args, env_extra=None):
    env = dict(os.environ, **(env_extra or {}))
    return subprocess.Popen([sys.executable, "-m", "autoaug", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def test_killed_run_resumes_to_the_same_metrics(tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    args = [*TINY, "--policy", "trivialaugment", "--epochs", "3"]
    assert _cli("train", *args, "--out", str(full)).wait(timeout=600) == 0

    proc = _cli("train", *args, "--out", str(cut))
    deadline = time.time() + 600
    while time.time() < deadline:  # kill it once the first epoch's checkpoint is on disk
        metrics = cut / "metrics.jsonl"
        if metrics.exists() and metrics.read_text().count("\n") >= 1 and (cut / "checkpoint.pt").exists():
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(_records(cut / "metrics.jsonl")) < 3, "the run finished before it could be killed"

    assert _cli("train", *args, "--out", str(cut), "--resume").wait(timeout=600) == 0
    assert _records(cut / "metrics.jsonl") == _records(full / "metrics.jsonl")
    a = torch.load(full / "model.pt", weights_only=True)
    b = torch.load(cut / "model.pt", weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


class _Explodes(PolicyStep):
    """A real step whose loss turns NaN at the second epoch, as a diverging run's would."""

    def __init__(self, policy, after_batches):
        super().__init__(policy)
        self.calls, self.after = 0, after_batches

    def loss(self, trainer, images, labels):
        loss, logs = super().loss(trainer, images, labels)
        self.calls += 1
        return (loss * float("nan") if self.calls > self.after else loss), logs


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    from autoaug.policy import Policy

    cfg = TrainConfig(
        train_size=320, val_size=0.2, batch_size=64, epochs=3, progress=False, out=str(tmp_path)
    )
    trainer = Trainer(cfg, step=_Explodes(Policy.identity(), after_batches=5))
    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 2.*checkpoint"):
        trainer.fit()
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_config_file_then_flags(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"dataset": "arrows", "epochs": 5, "lr": 0.05, "train_size": 256}))
    out = tmp_path / "run"
    code = main(["train", "--config", str(config), "--epochs", "1", "--out", str(out), "--batch-size", "64",
                 "--no-progress"])  # fmt: skip
    assert code == 0
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["dataset"] == "arrows" and resolved["epochs"] == 1 and resolved["lr"] == 0.05
    assert (out / "checkpoint.pt").is_file() and (out / "model.pt").is_file()
    assert "test accuracy" in capsys.readouterr().out

    config.write_text("epochs: 1\ncolour: blue\n")
    assert main(["train", "--config", str(config), "--out", str(out)]) == 2
    assert "unknown setting(s) ['colour']" in capsys.readouterr().err
    config.write_text("epochs: [1\n")
    assert main(["train", "--config", str(config), "--out", str(out)]) == 2
    assert "not valid YAML" in capsys.readouterr().err


def test_bad_training_input_is_one_line(tmp_path, capsys):
    assert main(["train", "--dataset", "nope", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("autoaug: error:")
    assert main(["train", "--model", "vgg99", "--train-size", "128", "--out", str(tmp_path)]) == 2
    assert "vgg99" in capsys.readouterr().err
    assert main(["train", "--policy", "missing.json", "--train-size", "128", "--out", str(tmp_path)]) == 2
    assert "policy file not found" in capsys.readouterr().err


@pytest.mark.parametrize("method", ["mcmc", "bilevel"])
def test_small_dataset_trains_in_one_batch_when_the_batch_is_not_chosen(tmp_path, capsys, method):
    """A folder or npz smaller than the default batch of 128 is searched in batches of every
    image (with a note), not refused; an explicit --batch-size larger than it still is."""
    import numpy as np

    rng = np.random.default_rng(0)
    y = np.arange(40) % 2
    x = (rng.random((40, 12, 12)) * 60).astype(np.uint8)
    x[y == 1, :, :6] += 150  # a class the model can see
    data = tmp_path / "tiny.npz"
    np.savez(data, x=x, y=y)
    out = tmp_path / method
    argv = ["search", "--method", method, "--dataset", f"npz:{data}", "--epochs", "2", "--device", "cpu",
            "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "fewer than the default batch of 128: batches of 29" in err  # 40 images less test and validation
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["batch_size"] == 29  # what ran, so a resume continues with it
    assert json.loads((out / "policy.json").read_text())["stages"]
    assert main([*argv, "--batch-size", "64", "--out", str(tmp_path / "explicit")]) == 2
    assert "batch_size = 64 is more than the 29 training images" in capsys.readouterr().err
