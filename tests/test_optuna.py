"""The Optuna searcher: spaces to policies, the seeded sampler, the trial budget, the density
proxy, outputs, studies made by an older version, and workers sharing a study on a real
PostgreSQL server (started here; skipped without one)."""

from __future__ import annotations

import glob
import json
import math
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from optuna.trial import TrialState

from autoaug.cli import main
from autoaug.data.synthetic import glyphs
from autoaug.policy import OpEntry, Policy
from autoaug.reference import randaugment
from autoaug.search import SearchConfig, get_searcher
from autoaug.search.density import DensityProxy, density_split
from autoaug.search.optuna import (
    FAMILIES,
    BudgetFull,
    TrialSeededTPE,
    best_so_far,
    claim_budget,
    families_of,
    identity_params,
    policy_from_params,
    prior_params,
    public_url,
    suggest_params,
)
from autoaug.spaces import get_space

REPO = Path(__file__).resolve().parent.parent


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session")
def tiny_glyphs(tmp_path_factory) -> str:
    """The built-in glyphs task shrunk for speed: 240 training and 60 test images at 16×16,
    as an npz dataset."""
    train, test = glyphs(240, 60, seed=0)
    path = tmp_path_factory.mktemp("data") / "glyphs_tiny.npz"

    def hwc(split) -> np.ndarray:
        small = torch.nn.functional.avg_pool2d(split.images.float(), 2).round().to(torch.uint8)
        return small.permute(0, 2, 3, 1).numpy()

    np.savez(path, x=hwc(train), y=train.labels.numpy(), x_test=hwc(test), y_test=test.labels.numpy())
    return str(path)


def _pg_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def postgres_url():
    """A throwaway PostgreSQL cluster in a temporary directory on a free port, as a URL.

    PostgreSQL refuses to run as root, so as root the cluster belongs to the ``postgres`` user
    (or ``nobody``) and its programs run through ``runuser``.
    """
    bindir = _pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql): no initdb/pg_ctl found")
    pytest.importorskip(
        "psycopg2", reason="psycopg2 is needed to talk to PostgreSQL (pip install psycopg2-binary)"
    )
    prefix: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="autoaug_pg_"))
    if os.geteuid() == 0:
        user = next((u for u in ("postgres", "nobody") if _has_user(u)), None)
        if user is None or shutil.which("runuser") is None:
            pytest.skip("running as root without a 'postgres' or 'nobody' user and runuser to run PostgreSQL")
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
        prefix = ["runuser", "-u", user, "--"]
    data, port = root / "data", _free_port()

    def run(*cmd: str) -> None:
        subprocess.run([*prefix, *cmd], check=True, capture_output=True, timeout=120)

    run(str(bindir / "initdb"), "-D", str(data), "-U", "autoaug", "-A", "trust", "-E", "UTF8")
    options = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={root} -c fsync=off"
    run(str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start")
    try:
        yield f"postgresql://autoaug@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*prefix, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=60)  # fmt: skip
        shutil.rmtree(root, ignore_errors=True)


def _load(name: str, url: str) -> optuna.Study:
    """The study as another program sees it (SQLAlchemy 2.1 reads postgresql:// as psycopg 3)."""
    return optuna.load_study(study_name=name, storage=url.replace("postgresql://", "postgresql+psycopg2://"))


def _by(trial: optuna.trial.FrozenTrial, proc: subprocess.Popen) -> bool:
    """Whether ``proc`` ran the trial (workers sign trials host:pid:run)."""
    return f":{proc.pid}:" in trial.user_attrs.get("worker", "")


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _config(data: str, out: Path, **kw) -> SearchConfig:
    values = dict(method="optuna", dataset=data, batch_size=32, epochs=1, trial_epochs=1, n_trials=3,
                  space="standard", optuna_space="randaugment", progress=False, out=str(out))  # fmt: skip
    values.update(kw)
    return SearchConfig.of(**values)


def _worker(data: str, out: Path, url: str, study: str, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "autoaug", "search", "--method", "optuna", "--dataset", data,
           "--batch-size", "32", "--space", "standard", "--optuna-space", "randaugment", "--no-progress",
           "--storage", url, "--study-name", study, "--out", str(out), *extra]  # fmt: skip
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return subprocess.Popen(
        cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


# ---------------------------------------------------------------- spaces and policies


def test_policy_space_to_policy_matches_the_params(tmp_path):
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", sampler=TrialSeededTPE(0))
    trial = study.ask()
    params = suggest_params(trial, "policy", "symmetry")
    ops = get_space("symmetry").ops
    assert set(params) == {"n_ops"} | {f"weight:{o}" for o in ops} | {
        f"magnitude:{o}" for o in ops if get_space("symmetry").ranges.get(o)
    }
    policy = policy_from_params(params, "policy", "symmetry", "bilinear")
    assert len(policy.stages) == params["n_ops"]
    for entry in policy.stages[0]:
        assert entry.weight == params[f"weight:{entry.op}"]
        if f"magnitude:{entry.op}" in params:
            assert entry.magnitudes == (params[f"magnitude:{entry.op}"],)
    # JSON round trip, and it augments a batch.
    again = Policy.from_dict(json.loads(policy.to_json()))
    assert again.to_dict() == policy.to_dict()
    x = torch.rand(6, 3, 16, 16)
    assert policy.apply(x, generator=torch.Generator().manual_seed(0)).shape == x.shape


def test_randaugment_space_reproduces_randaugment():
    params = {"n_ops": 2, "magnitude": 9} | {f"use:{o}": True for o in get_space("standard").ops}
    policy = policy_from_params(params, "randaugment", "standard", "nearest")
    assert policy.to_dict()["stages"] == randaugment(2, 9).to_dict()["stages"]
    # Only the allowed ops; no op or no stage is the identity.
    few = policy_from_params({"n_ops": 1, "magnitude": 30, "use:rotate": True, "use:equalize": True},
                             "randaugment", "standard")  # fmt: skip
    assert few.ops == ["rotate", "equalize"] and few.stages[0][0].magnitudes == (1.0,)
    assert (
        policy_from_params({"n_ops": 0, "magnitude": 3, "use:rotate": True}, "randaugment", "standard").stages
        == []
    )
    assert policy_from_params({"n_ops": 2, "magnitude": 3}, "randaugment", "standard").stages == []
    with pytest.raises(ValueError, match="unknown optuna space 'grid'"):
        policy_from_params(params, "grid", "standard")


def test_families_space_is_randaugment_over_chosen_families():
    study = optuna.create_study(sampler=TrialSeededTPE(0))
    params = suggest_params(study.ask(), "families", "symmetry")
    assert set(params) == {"n_ops", "magnitude", "prob"} | {f"family:{f}" for f in FAMILIES}
    assert list(families_of("standard")) == ["geometric", "photometric"]  # no flips nor erasing there
    assert set(families_of("symmetry")["geometric"]) <= set(get_space("symmetry").ops)
    chosen = {"n_ops": 2, "magnitude": 15, "prob": 0.4, "family:flip": True, "family:geometric": True}
    policy = policy_from_params(chosen, "families", "symmetry")
    assert len(policy.stages) == 2
    probs = policy.op_probabilities()[0]
    # Each chosen family is half of the picks; its ops share it; each applied with probability 0.4.
    assert probs["hflip"] == pytest.approx(0.5 * 0.4)
    assert probs["rotate"] == pytest.approx(0.5 / 6 * 0.4) and "brightness" not in probs
    assert {e.magnitudes for e in policy.stages[0] if e.op != "hflip"} == {(0.5,)}
    # Probability 0, or no family, is no augmentation.
    assert policy_from_params(chosen | {"prob": 0.0}, "families", "symmetry").stages == []
    assert policy_from_params({"n_ops": 3, "magnitude": 9, "prob": 1.0}, "families", "symmetry").stages == []


def test_sampler_is_seeded_per_trial_number():
    def proposals(seed: int) -> list[dict]:
        study = optuna.create_study(sampler=TrialSeededTPE(seed), direction="maximize")
        for _ in range(4):
            trial = study.ask()
            params = suggest_params(trial, "randaugment", "standard")
            study.tell(trial, params["magnitude"] / 30)
        return [t.params for t in study.trials]

    first = proposals(0)
    assert first == proposals(0)
    assert first != proposals(1)
    assert len({json.dumps(p, sort_keys=True) for p in first}) == 4


@pytest.mark.parametrize("optuna_space", ["families", "policy", "randaugment"])
def test_prior_is_randaugments_point_of_each_space(optuna_space):
    x = torch.rand(64, 3, 16, 16)
    prior = policy_from_params(prior_params(optuna_space, "symmetry"), optuna_space, "symmetry")
    ra_ops = set(FAMILIES["geometric"] + FAMILIES["photometric"]) & set(get_space("symmetry").ops)
    assert len(prior.stages) == 2 and set(prior.ops) == ra_ops  # no flips, erasing or drastic ops
    for stage in prior.stages:
        for entry in stage:
            assert entry.prob == 1.0 and all(m == pytest.approx(9 / 30) for m in entry.magnitudes if m)
    assert not torch.equal(prior.apply(x), x)


def test_prior_stands_unless_a_trial_scores_above_it_by_more_than_the_noise(tmp_path):
    """A study of four trials (no augmentation, the prior, two others), scored on 100 images:
    one binomial standard error at 0.80 is 0.04."""

    def study_with(prior_score: float):
        cfg = SearchConfig.of(
            method="optuna", dataset="glyphs", space="symmetry", out=str(tmp_path / f"p{prior_score}")
        )
        searcher = get_searcher("optuna")(cfg)
        study = searcher.open_study()
        study.set_user_attr("proxy_model", {"scored_images": 100})
        for score in (0.5, prior_score, 0.8, 0.6):
            trial = study.ask()
            suggest_params(trial, "families", "symmetry")
            study.tell(trial, score)
        return searcher.write_outputs(study)["policy"]

    kept = study_with(0.77)
    assert kept.meta["params"] == prior_params("families", "symmetry")
    assert kept.meta["prior_kept"] and kept.meta["prior_over"] == {"trial": 2, "score": 0.8}
    assert kept.meta["mixture_of_trials"] == [1]
    beaten = study_with(0.70)
    assert not beaten.meta["prior_kept"] and beaten.meta["mixture_of_trials"] == [2, 1, 3, 0]
    best = study_with(0.9)
    assert best.meta["prior_kept"] and "prior_over" not in best.meta and best.meta["trial"] == 1


def test_default_search_tries_the_prior_second_and_says_whether_it_stands(tiny_glyphs, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["search", "--method", "optuna", "--dataset", tiny_glyphs, "--batch-size", "32", "--epochs", "2",
            "--n-trials", "6", "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert rows[1]["params"] == prior_params("families", "symmetry")
    study = optuna.load_study(
        study_name=f"autoaug-{tiny_glyphs}-families", storage=f"sqlite:///{out / 'study.db'}"
    )
    images = study.user_attrs["proxy_model"]["scored_images"]
    best = max(rows, key=lambda r: (r["score"], -r["trial"]))
    se = math.sqrt(best["score"] * (1 - best["score"]) / images)
    policy = Policy.load(out / "policy.json")
    if rows[1]["score"] >= best["score"] - se:
        assert policy.meta["prior_kept"] and policy.meta["mixture_of_trials"] == [1]
        assert "result: trial 1, RandAugment's point (the prior)" in text
    else:
        assert not policy.meta["prior_kept"] and policy.meta["trial"] == best["trial"]
        assert f"best: trial {best['trial']}" in text


@pytest.mark.parametrize("optuna_space", ["families", "policy", "randaugment"])
def test_first_trial_is_no_augmentation(optuna_space):
    anchor = identity_params(optuna_space, "standard")
    study = optuna.create_study(sampler=TrialSeededTPE(0, fixed=[anchor]), direction="maximize")
    for _ in range(2):
        trial = study.ask()
        suggest_params(trial, optuna_space, "standard")
        study.tell(trial, 0.5)
    assert study.trials[0].params == anchor and study.trials[1].params != anchor
    x = torch.rand(4, 3, 16, 16)
    assert torch.equal(policy_from_params(anchor, optuna_space, "standard").apply(x), x)


def test_budget_counts_finished_and_earlier_running_trials(tmp_path):
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}")
    t0, t1, t2 = study.ask(), study.ask(), study.ask()
    claim_budget(study, t0, 2)
    claim_budget(study, t1, 2)
    with pytest.raises(BudgetFull):
        claim_budget(study, t2, 2)
    study.tell(t0, 0.5)
    study.tell(t2, state=TrialState.FAIL)  # a failed trial gives its place back
    claim_budget(study, t1, 2)
    with pytest.raises(BudgetFull):
        claim_budget(study, study.ask(), 1)


def test_public_url_hides_the_password():
    assert (
        public_url("postgresql://me:secret@db.example:5432/studies")
        == "postgresql://me:***@db.example:5432/studies"
    )


# ------------------------------------------------------------------ a search (SQLite)


def test_train_proxy_search_writes_outputs_and_show_reads_them(tiny_glyphs, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["search", "--method", "optuna", "--dataset", tiny_glyphs, "--batch-size", "32", "--n-trials", "3",
            "--proxy", "train", "--trial-epochs", "1", "--space", "standard", "--optuna-space", "policy",
            "--export-top", "1", "--prior", "none", "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert (
        "3 trials of 1 epochs" in text
        and "policy.json (the best trial's policy)" in text
        and "best: trial" in text
        and "optuna-dashboard sqlite:///" in text
    )
    for name in (
        "policy.json",
        "study.db",
        "study.json",
        "metrics.jsonl",
        "config.yaml",
        "optimization_history.png",
    ):
        assert (out / name).is_file(), name
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["trial"] for r in rows] == [0, 1, 2]
    assert all(r["state"] in ("complete", "pruned") and r["val_acc_per_epoch"] for r in rows)
    policy = Policy.load(out / "policy.json")
    best = max((r for r in rows if r["state"] == "complete"), key=lambda r: r["val_acc"])
    assert policy.meta["trial"] == best["trial"] and policy.meta["params"] == best["params"]
    assert policy.meta["image_size"] == [16, 16]  # the size it was learned at, for `autoaug export`
    assert (
        policy.to_dict()["stages"]
        == policy_from_params(best["params"], "policy", "standard").to_dict()["stages"]
    )
    assert best_so_far(rows)[-1]["trial"] == best["trial"]
    assert not list(out.glob("trials/*/checkpoint.pt"))  # proxy models are not kept
    study = json.loads((out / "study.json").read_text())
    assert study["study_name"] == f"autoaug-{tiny_glyphs}-policy"

    assert main(["show", str(out)]) == 0
    assert "optuna_" in capsys.readouterr().out

    # Joining with other settings is refused, naming the difference.
    assert main([*argv[:-2], "--seed", "1", "--out", str(out)]) == 2
    assert "seed" in capsys.readouterr().err


# ------------------------------------------------------------------------ density proxy


def test_train_proxy_on_fewer_images_than_a_batch(tiny_glyphs, tmp_path):
    """Each trial trains on half of the 216 training images; a batch of 200 used to end the search
    ('more than the 108 training images'); a trial now trains on its part in one batch."""
    out = tmp_path / "run"
    argv = ["search", "--method", "optuna", "--dataset", tiny_glyphs, "--batch-size", "200", "--n-trials", "2",
            "--proxy", "train", "--trial-epochs", "1", "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["state"] for r in rows] == ["complete", "complete"] and all(0 < r["val_acc"] <= 1 for r in rows)


def test_a_finished_study_run_again_says_its_summary_and_the_noise(tiny_glyphs, tmp_path, capsys):
    """Run again on a study with every trial done, the searcher fits no proxy: its summary used to
    read the proxy's images and end in a traceback. It reads them from the study now, and says
    how many trials score within the binomial noise of the best."""
    import re

    argv = ["search", "--method", "optuna", "--dataset", tiny_glyphs, "--batch-size", "32", "--n-trials", "4",
            "--epochs", "1", "--no-progress", "--out", str(tmp_path / "run")]  # fmt: skip
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert main(argv) == 0
    again = capsys.readouterr().out
    assert "0 finished by this worker" in again
    for out in (first, again):
        images = int(re.search(r"each of (\d+) held-out images", out).group(1))
        tied = re.search(
            r"(\d+) of 4 complete trials score within ([\d.]+) of the best .* over the (\d+) images", out
        )
        alone = re.search(r"no other of the 4 complete trials scores within ([\d.]+) of the best .* over the (\d+) "
                          "images", out)  # fmt: skip
        assert bool(tied) != bool(alone)
        n_tied, se_said, over = (int(tied[1]), tied[2], tied[3]) if tied else (1, alone[1], alone[2])
        assert int(over) == images and 1 <= n_tied <= 4
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    best = max(r["score"] for r in rows if r["state"] == "complete")
    se = math.sqrt(best * (1 - best) / images)
    assert float(se_said) == pytest.approx(se, abs=1e-4)
    assert n_tied == sum(r["score"] >= best - se for r in rows if r["state"] == "complete")


def test_density_proxy_scores_augmented_held_out_images_and_reloads_its_model(tiny_glyphs, tmp_path):
    from autoaug.data import load_dataset

    ds = load_dataset(tiny_glyphs, seed=0)
    fit, held = density_split(ds, 0.5, 0)
    assert len(fit) + len(held) == len(ds.train) + len(ds.val) and abs(len(fit) - len(held)) <= 1
    with pytest.raises(ValueError, match=r"holdout 1\.0"):
        density_split(ds, 1.0, 0)
    settings = dict(holdout=0.5, draws=3, seed=0, out=tmp_path / "proxy", epochs=2, batch_size=32)
    proxy = DensityProxy(ds, **settings)
    fitted = proxy.fit()
    assert not fitted["reused"] and fitted["held_out_images"] == len(held) == len(proxy.held_out)
    # No augmentation scores the clean accuracy on every measure, without a forward pass per draw.
    none = proxy.score(Policy.identity())
    assert none["best"] == none["acc"] == pytest.approx(fitted["clean_acc"]) and none["forwards"] == 0
    ra = proxy.score(randaugment(2, 9))
    assert ra["best_of"] == sorted(ra["best_of"]) and ra["best"] == pytest.approx(ra["best_of"][-1])
    assert ra["best"] >= ra["acc"] and ra["min_loss"] <= ra["loss"]
    assert 0 < ra["forwards"] <= 3 * len(held)
    # A mild policy only passes the images it changes.
    mild = policy_from_params({"n_ops": 1, "magnitude": 5, "prob": 0.1, "family:geometric": True},
                              "families", "symmetry")  # fmt: skip
    assert proxy.score(mild)["forwards"] < 0.3 * 3 * len(held)
    # The same settings reload the model, and score the same (the draws are seeded).
    again = DensityProxy(ds, **settings)
    assert again.fit()["reused"]
    drop = ("seconds",)
    assert {k: v for k, v in again.score(randaugment(2, 9)).items() if k not in drop} == {
        k: v for k, v in ra.items() if k not in drop
    }
    # A model trained with a base augmentation is another model: not reloaded for this one.
    flip = Policy([[OpEntry("hflip", 1.0, 0.5)]], space="symmetry")
    assert not DensityProxy(ds, base=flip, **settings).fit()["reused"]


def test_density_proxy_on_fewer_images_than_a_batch_trains_on_its_whole_part(tiny_glyphs, tmp_path):
    """A small dataset (here 120 images in the proxy's part, batch_size 200) used to end the
    search with the loader's 'no batch would be yielded'; the proxy's model now takes its whole
    part as one batch."""
    from autoaug.data import load_dataset

    ds = load_dataset(tiny_glyphs, seed=0)
    proxy = DensityProxy(ds, holdout=0.5, draws=1, seed=0, out=tmp_path / "proxy", epochs=2, batch_size=200)
    fit, _ = density_split(ds, 0.5, 0)
    assert proxy.trainer.config.batch_size == len(fit) < 200
    fitted = proxy.fit()
    assert fitted["fit_images"] == len(fit) and 0 < fitted["clean_acc"] <= 1


def test_density_proxy_scores_a_fixed_sample_of_the_held_out_images(tiny_glyphs, tmp_path):
    from autoaug.data import load_dataset

    ds = load_dataset(tiny_glyphs, seed=0)
    settings = dict(holdout=0.5, draws=3, seed=0, out=tmp_path / "proxy", epochs=2, batch_size=32)
    whole = DensityProxy(ds, **settings)
    whole.fit()
    n = len(whole.held_out)
    some = DensityProxy(ds, images=n // 3, **settings)
    fitted = some.fit()
    assert fitted["reused"] and fitted["held_out_images"] == n and fitted["scored_images"] == n // 3
    rows = some.rows
    assert len(rows) == n // 3 and torch.equal(rows, rows.sort().values) and len(set(rows.tolist())) == n // 3
    # The sample is the seed's: the same for every policy and every worker, another for another seed.
    assert torch.equal(DensityProxy(ds, images=n // 3, **settings).rows, rows)
    assert not torch.equal(DensityProxy(ds, images=n // 3, **(settings | {"seed": 1})).rows, rows)
    # No augmentation scores the whole proxy's clean results at those rows, and only those.
    loss, right = whole._clean()
    none = some.score(Policy.identity())
    assert none["acc"] == pytest.approx(right[rows].float().mean().item())
    assert none["loss"] == pytest.approx(loss[rows].mean().item())
    ra = some.score(randaugment(2, 9))
    assert 0 < ra["forwards"] <= 3 * (n // 3)
    # 0, None or at least the held-out count: every image.
    assert (
        len(DensityProxy(ds, images=0, **settings).rows)
        == n
        == len(DensityProxy(ds, images=n + 5, **settings).rows)
    )
    with pytest.raises(ValueError, match=r"images -1"):
        DensityProxy(ds, images=-1, **settings)


def test_density_search_scores_trials_without_training_them(tiny_glyphs, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["search", "--method", "optuna", "--dataset", tiny_glyphs, "--batch-size", "32", "--epochs", "2",
            "--n-trials", "4", "--prior", "none", "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "4 trials scored by density matching" in text and "density proxy: small_cnn trained" in text
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["state"] for r in rows] == ["complete"] * 4
    assert rows[0]["params"] == identity_params("families", "symmetry")
    assert rows[0]["score"] == pytest.approx(rows[0]["mean_acc"])  # no augmentation: every draw is clean
    assert not list(out.glob("trials/*/metrics.jsonl"))  # no training per trial
    policy = Policy.load(out / "policy.json")
    ranked = sorted(rows, key=lambda r: (-r["score"], r["trial"]))
    assert policy.meta["trial"] == ranked[0]["trial"] and policy.meta["proxy"] == "density"
    assert policy.meta["image_size"] == [16, 16]
    # The written policy is the mixture of the best trials' policies (all 4 here: export_top 5).
    assert policy.meta["mixture_of_trials"] == [r["trial"] for r in ranked]
    members = [policy_from_params(r["params"], "families", "symmetry", "bilinear") for r in ranked]
    assert policy.to_dict()["stages"] == Policy.mixture(members).to_dict()["stages"]
    assert "the mixture of the 4 best trials' policies" in text
    # Joining the study again with a larger budget reloads the proxy model instead of training it.
    assert main([*argv[:-2], "--n-trials", "5", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "density proxy: small_cnn loaded" in text and "5 complete" in text
    # A study made before proxy_images existed scored every held-out image: joined with
    # --proxy-images 0, refused (naming it) with the default.
    study = optuna.load_study(study_name=json.loads((out / "study.json").read_text())["study_name"],
                              storage=f"sqlite:///{out / 'study.db'}")  # fmt: skip
    # Likewise a study from before the prior: its trial 1 was TPE's, as with --prior none.
    older = {k: v for k, v in study.user_attrs["autoaug"].items() if k not in ("proxy_images", "prior")}
    study.set_user_attr("autoaug", older | {"proxy_draws": 5})
    assert main([*argv[:-2], "--n-trials", "6", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "'proxy_images': (0, 1000)" in err and "'proxy_draws': (5, 3)" in err and "prior" not in err
    default_prior = [a for a in argv[:-2] if a not in ("--prior", "none")]
    assert main([*default_prior, "--proxy-images", "0", "--proxy-draws", "5", "--out", str(out)]) == 2
    assert "'prior': ('none', 'randaugment')" in capsys.readouterr().err
    again = [*argv[:-2], "--n-trials", "6", "--proxy-images", "0", "--proxy-draws", "5", "--out", str(out)]
    assert main(again) == 0
    assert "6 complete" in capsys.readouterr().out


# ------------------------------------------------------------------- a streamed folder


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    """36 JPEGs and PNGs of mixed sizes and modes, a colour per class (tests/test_stream.py)."""
    from test_stream import make_photo_folder

    return make_photo_folder(tmp_path_factory.mktemp("photos"))


def test_density_split_of_a_streamed_folder_splits_its_files(photos):
    from autoaug.data import FileSplit, Split, load_dataset

    resident = load_dataset(f"folder:{photos}", image_size="16", stream="off")
    streamed = load_dataset(f"folder:{photos}", image_size="16", stream="on", train_crop="random")
    (fit_r, held_r), (fit_s, held_s) = density_split(resident, 0.5, 3), density_split(streamed, 0.5, 3)
    assert isinstance(fit_s, FileSplit) and isinstance(held_s, FileSplit) and isinstance(held_r, Split)
    # D_M trains as the folder's training images do, D_A is read as evaluation reads.
    assert fit_s.crop == "random" and held_s.crop == "center"
    assert torch.equal(held_s.load().images, held_r.images) and torch.equal(fit_s.labels, fit_r.labels)
    # --train-crop random on a folder that fits in memory: the training files are decoded and pooled.
    mixed = load_dataset(f"folder:{photos}", image_size="16", train_crop="random")
    assert isinstance(mixed.train, FileSplit) and isinstance(mixed.val, Split)
    fit_m, held_m = density_split(mixed, 0.5, 3)
    assert torch.equal(fit_m.images, fit_r.images) and torch.equal(held_m.images, held_r.images)


def test_density_proxy_on_a_streamed_folder_scores_as_in_memory(photos, tmp_path):
    from autoaug.data import FileSplit, Split, load_dataset

    settings = dict(holdout=0.5, draws=3, seed=0, epochs=2, batch_size=6, device="cpu", workers=0)
    # Between D_A's 14 images (10,752 bytes at 16×16) and the folder's 36 (27,648): the folder
    # streams, D_A is decoded once.
    between = 20_000 / 2**30
    scores = {}
    for how, stream, budget, held_kind in [("resident", "auto", 4.0, Split), ("streamed", "on", 4.0, FileSplit),
                                           ("held_out_decoded", "auto", between, Split)]:  # fmt: skip
        ds = load_dataset(f"folder:{photos}", image_size="16", stream=stream, memory_budget=budget)
        proxy = DensityProxy(ds, out=tmp_path / how, stream=stream, memory_budget=budget, **settings)
        assert isinstance(proxy.dataset.train, Split if how == "resident" else FileSplit), how
        assert isinstance(proxy.held_out, held_kind) and len(proxy.held_out) == 14, how
        fitted = proxy.fit()
        scores[how] = [fitted["clean_acc"], *(proxy.score(p) for p in (Policy.identity(), randaugment(2, 9)))]
        # A sample of 6 of the 14 held-out images (the model reloaded): read from disk or memory alike.
        some = DensityProxy(ds, out=tmp_path / how, stream=stream, memory_budget=budget, images=6, **settings)
        assert some.fit()["reused"] and some.fit()["scored_images"] == 6
        scores[how].append(some.score(randaugment(2, 9)))
        for score in scores[how][1:]:
            score.pop("seconds")
    assert scores["streamed"] == scores["resident"] == scores["held_out_decoded"]
    assert scores["streamed"][2]["forwards"] > 0 and 0 < scores["streamed"][3]["forwards"] <= 3 * 6


@pytest.mark.parametrize("proxy", ["density", "train"])
def test_optuna_search_on_a_streamed_folder_writes_its_policy(photos, tmp_path, capsys, proxy):
    out = tmp_path / "run"
    argv = ["search", "--method", "optuna", "--dataset", f"folder:{photos}", "--image-size", "32x32", "--stream", "on",
            "--workers", "0", "--proxy", proxy, "--n-trials", "3", "--epochs", "1", "--trial-epochs", "1",
            "--batch-size", "8", "--device", "cpu", "--no-progress", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["state"] for r in rows] == ["complete"] * 3
    policy = Policy.load(out / "policy.json")
    assert policy.meta["proxy"] == proxy and policy.meta["image_size"] == [32, 32]


def test_a_study_made_by_an_older_version_or_another_space_is_refused_in_one_line(
    tiny_glyphs, tmp_path, capsys
):
    out = tmp_path / "old"
    out.mkdir()
    old = optuna.create_study(storage=f"sqlite:///{out / 'study.db'}", study_name="s", direction="maximize")
    old.set_user_attr("autoaug", {"dataset": tiny_glyphs, "epochs_per_trial": 3})  # no schema: before it
    trial = old.ask()
    trial.suggest_float("weight:rotate", 0.0, 1.0)
    old.tell(trial, 0.5)
    argv = ["search", "--method", "optuna", "--dataset", tiny_glyphs, "--batch-size", "32", "--epochs", "1",
            "--n-trials", "1", "--study-name", "s", "--no-progress"]  # fmt: skip
    assert main([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "older autoaug" in err and "weight:rotate" in err and "--study-name" in err
    assert len(err.splitlines()) == 1
    # A current study of another space: the schema names the difference.
    new = tmp_path / "new"
    assert main([*argv, "--optuna-space", "randaugment", "--space", "standard", "--out", str(new)]) == 0
    capsys.readouterr()
    assert main([*argv, "--space", "standard", "--out", str(new)]) == 2
    err = capsys.readouterr().err.strip()
    assert "optuna_space" in err and "'randaugment', 'families'" in err and len(err.splitlines()) == 1


# -------------------------------------------------------------- workers on PostgreSQL


def test_workers_opening_a_new_database_at_once_all_get_the_storage(postgres_url):
    """Workers started together on an empty database all create its tables at the same moment;
    PostgreSQL lets one win and the others see a duplicate key. Every worker must open it."""
    import psycopg2

    conn = psycopg2.connect(postgres_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute("CREATE DATABASE race")
    conn.close()
    url = postgres_url.rsplit("/", 1)[0] + "/race"
    start = time.time() + 3  # every process imports first, then they open the storage together
    code = ("import sys, time; from autoaug.search.optuna import make_storage; "
            f"time.sleep(max(0.0, {start} - time.time())); make_storage(sys.argv[1], 10); print('opened')")  # fmt: skip
    procs = [subprocess.Popen([sys.executable, "-c", code, url], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for _ in range(4)]  # fmt: skip
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outputs
    assert all(out.strip().endswith("opened") for out in outputs), outputs


def test_two_workers_share_one_study(tiny_glyphs, postgres_url, tmp_path):
    name = "two_workers"
    procs = [_worker(tiny_glyphs, tmp_path / f"w{i}", postgres_url, name, "--n-trials", "6", "--proxy", "train",
                     "--trial-epochs", "3", "--pruner", "none") for i in range(2)]  # fmt: skip
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    study = _load(name, postgres_url)
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 6
    assert sorted(t.number for t in finished) == sorted({t.number for t in finished})
    assert len({json.dumps(t.params, sort_keys=True) for t in finished}) == 6  # none run twice
    assert not [t for t in study.trials if t.state == TrialState.RUNNING]
    assert all(t.user_attrs.get("surplus") for t in study.trials if t.state == TrialState.FAIL)
    workers = {t.user_attrs["worker"] for t in finished}
    assert len(workers) == 2, outputs  # both took part
    for i in range(2):
        policy = Policy.load(tmp_path / f"w{i}" / "policy.json")
        assert policy.meta["study"] == name
        assert "postgresql://autoaug@127.0.0.1" in (tmp_path / f"w{i}" / "study.json").read_text()


def test_killed_worker_leaves_the_study_usable(tiny_glyphs, postgres_url, tmp_path):
    name = "killed_worker"
    args = (
        "--n-trials",
        "4",
        "--proxy",
        "train",
        "--trial-epochs",
        "12",  # a trial of seconds, so the kill lands inside one even when polling the study is slow
        "--heartbeat",
        "1",
        "--pruner",
        "none",
    )
    victim = _worker(tiny_glyphs, tmp_path / "victim", postgres_url, name, *args)
    survivor = _worker(tiny_glyphs, tmp_path / "survivor", postgres_url, name, *args)
    killed_trial = None
    deadline = time.monotonic() + 120
    while killed_trial is None and time.monotonic() < deadline:
        time.sleep(0.2)
        try:
            trials = _load(name, postgres_url).trials
        except KeyError:  # the study does not exist yet
            continue
        if any(_by(t, victim) and t.state == TrialState.RUNNING for t in trials):
            time.sleep(0.1)  # into its training
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=30)
            running = [
                t
                for t in _load(name, postgres_url).trials
                if _by(t, victim) and t.state == TrialState.RUNNING
            ]
            assert len(running) == 1, "the victim was killed between two trials"
            killed_trial = running[0].number
    assert killed_trial is not None, "the victim never started a trial"
    out = survivor.communicate(timeout=300)[0]
    assert survivor.returncode == 0, out
    study = _load(name, postgres_url)
    states = {t.number: t.state for t in study.trials}
    assert states[killed_trial] == TrialState.FAIL
    assert sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states.values()) == 4
    assert TrialState.RUNNING not in states.values()
    assert f"trial {killed_trial} (" in out and "marked failed" in out


def test_resuming_a_study_by_name_continues_it(tiny_glyphs, postgres_url, tmp_path):
    name = "resume_me"
    first = get_searcher("optuna")(_config(tiny_glyphs, tmp_path / "a", storage=postgres_url, study_name=name,
                                           n_trials=2)).run()  # fmt: skip
    before = {t.number: t.value for t in _load(name, postgres_url).trials}
    assert first.summary["trials"]["complete"] + first.summary["trials"]["pruned"] == 2
    # A later run (another directory, another machine) names the study and raises the budget.
    second = get_searcher("optuna")(_config(tiny_glyphs, tmp_path / "b", storage=postgres_url, study_name=name,
                                            n_trials=4)).run()  # fmt: skip
    study = _load(name, postgres_url)
    assert sorted(t.number for t in study.trials) == [0, 1, 2, 3]
    assert {t.number: t.value for t in study.trials if t.number in before} == before
    assert second.summary["finished_by_worker"] == 2
    rows = (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 4  # the outputs cover the whole study, not just this run's trials


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--proxy", "sometimes"], "unknown proxy 'sometimes'; known: density, train"),
        (["--proxy-score", "median"], "unknown proxy score 'median'; known: best, acc, loss, min_loss"),
        (["--proxy-holdout", "1"], "--proxy-holdout 1"),
        (["--proxy-draws", "0"], "--proxy-draws 0"),
    ],
)
def test_bad_proxy_settings_are_one_line(flags, message, tmp_path, capsys):
    assert main(["search", "--method", "optuna", *flags, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
    assert not (tmp_path / "run").exists()
