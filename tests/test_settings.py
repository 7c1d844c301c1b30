"""Settings: one declaration per setting (its help line and range) behind the flags, the
resolved config.yaml and configs/SETTINGS.md; a section per search method; old flat configs."""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import pytest
import torch
import yaml

from autoaug.cli import build_parser, main
from autoaug.search import SECTIONS, BilevelConfig, McmcConfig, SearchConfig, get_searcher
from autoaug.settings import Limit, SettingError, flatten, to_yaml
from autoaug.train import TrainConfig

REPO = Path(__file__).resolve().parents[1]


def _flags(argv: list[str]) -> dict[str, str]:
    """The flags ``autoaug ARGV --help`` lists, with their help text (argparse's own parser)."""
    parser = build_parser(argv)
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    command = sub.choices[argv[0]]
    return {
        flag: action.help or ""
        for action in command._actions
        if action.help != argparse.SUPPRESS and not isinstance(action, argparse._HelpAction)
        for flag in action.option_strings
        if flag.startswith("--") and not flag.startswith("--no-")
    }


@pytest.mark.parametrize("method", sorted(SECTIONS))
def test_search_help_shows_the_common_settings_and_the_methods_only(method):
    flags = _flags(["search", "--method", method])
    for name in SearchConfig.fields():
        if name not in SECTIONS and name != "policy":
            assert "--" + name.replace("_", "-") in flags, name
    for other, section in SECTIONS.items():
        for name in section.fields():
            flag = "--" + name.replace("_", "-")
            shown = name in SECTIONS[method].fields()
            assert (flag in flags) == shown, (method, other, flag)
    if method == "bilevel":
        assert "--n-trials" not in flags and "--chain-length" not in flags and "--stages" in flags


@pytest.mark.parametrize(
    "argv", [["train"], ["search"], ["search", "--method", "bilevel"], ["search", "--method", "optuna"]]
)
def test_every_flag_says_what_it_does(argv):
    for flag, text in _flags(argv).items():
        words = text.split("(default")[0].strip()
        assert len(words.split()) >= 3, f"{flag}: {text!r}"


def test_the_help_follows_the_method_of_the_config_file(tmp_path):
    config = tmp_path / "optuna.yaml"
    config.write_text("method: optuna\noptuna:\n  n_trials: 4\n")
    flags = _flags(["search", "--config", str(config)])
    assert "--n-trials" in flags and "--levels" not in flags


def test_resolved_config_holds_the_method_and_reads_back():
    cfg = SearchConfig.of(method="bilevel", stages=1, epochs=3)
    text = to_yaml(cfg)
    assert yaml.safe_load(text) == cfg.to_dict()
    assert set(cfg.to_dict()) & set(SECTIONS) == {"bilevel"} and "policy" not in cfg.to_dict()
    # Each setting's help line stands above it, indented with its section.
    lines = text.splitlines()
    at = lines.index("  stages: 1")
    assert lines[at - 1] == "  # " + "ops applied one after the other to each image (>= 1)"
    assert SearchConfig.from_dict(yaml.safe_load(text)) == cfg


def test_settings_go_to_the_methods_section():
    cfg = SearchConfig.of(method="mcmc", levels=5, epsilon=0.3, epochs=2)
    assert cfg.mcmc.levels == 5 and cfg.mcmc.epsilon == 0.3 and cfg.bilevel.epsilon == 0.6
    moved = cfg.replace(method="bilevel", epsilon=0.9)
    assert moved.bilevel.epsilon == 0.9 and moved.mcmc.epsilon == 0.3 and moved.epochs == 2
    with pytest.raises(
        ValueError, match=r"'n_trials': a setting of --method optuna, not of this search's method 'mcmc'"
    ):
        cfg.replace(n_trials=3)
    with pytest.raises(ValueError, match="unknown setting 'colour'"):
        SearchConfig.of(colour=1)


def test_ranges_are_checked_in_sections_and_name_the_key():
    with pytest.raises(SettingError, match=r"mcmc.epsilon = -1: expected a number >= 0"):
        SearchConfig.from_dict({"mcmc": {"epsilon": -1}})
    with pytest.raises(SettingError, match=r"bilevel.temperature = 0: expected a number > 0"):
        BilevelConfig(temperature=0)
    with pytest.raises(SettingError, match="mcmc = 3: expected a mapping of mcmc settings"):
        SearchConfig.from_dict({"mcmc": 3})
    with pytest.raises(ValueError, match=r"f.yaml: unknown setting\(s\) \['mcmc.levls'\]"):
        SearchConfig.from_dict({"mcmc": {"levls": 3}}, source="f.yaml")
    assert SearchConfig.from_dict({"mcmc": None}).mcmc == McmcConfig()  # an empty section: the defaults
    assert "(in (0, 1])" in to_yaml(BilevelConfig()) and Limit(0, 1, low_open=True).__contains__(1)


def test_an_old_flat_config_names_the_new_key(tmp_path, capsys):
    old = tmp_path / "old.yaml"
    old.write_text("method: optuna\nepochs: 2\nn_trials: 5\n")
    assert main(["search", "--config", str(old)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "config key 'n_trials' is now 'optuna.n_trials'" in err
    # A key of several methods: the file's method's, or every place it is.
    assert "is now 'bilevel.epsilon'" in _refusal({"method": "bilevel", "epsilon": 1})
    assert "is now 'mcmc.epsilon' or 'bilevel.epsilon'" in _refusal({"epsilon": 1})


def _refusal(data: dict) -> str:
    with pytest.raises(ValueError) as e:
        SearchConfig.from_dict(data)
    return str(e.value)


def test_a_flag_of_another_method_is_refused(capsys):
    assert main(["search", "--method", "bilevel", "--chain-length", "2"]) == 2
    err = capsys.readouterr().err
    assert "--chain-length: a setting of --method mcmc, not of this search's method 'bilevel'" in err


def _old_shape(config: dict) -> dict:
    """A run's settings as autoaug wrote them before the sections: one flat mapping of every
    method's settings (and policy, override)."""
    flat = {k: v for k, v in config.items() if k not in SECTIONS} | {"policy": "none", "override": False}
    for section in SECTIONS.values():
        flat |= section().to_dict()
    return flat | config[config["method"]]


def test_an_old_runs_checkpoint_resumes_in_the_new_shape(tmp_path, capsys):
    """A run checkpointed by an older autoaug (flat settings) continues with --resume, and a
    changed setting is still refused, by its new name."""
    out = tmp_path / "run"
    argv = [
        "search",
        "--train-size",
        "128",
        "--batch-size",
        "64",
        "--levels",
        "3",
        "--no-progress",
        "--out",
        str(out),
    ]
    assert main([*argv, "--epochs", "1"]) == 0
    ckpt = out / "checkpoint.pt"
    state = torch.load(ckpt, weights_only=True)
    saved = json.loads(state["config"])
    assert saved["mcmc"]["levels"] == 3 and "optuna" not in saved
    state["config"] = json.dumps(_old_shape(saved))
    torch.save(state, ckpt)
    assert main(["search", "--resume", "--out", str(out), "--epsilon", "0.4"]) == 2
    assert "mcmc.epsilon 0.6 -> 0.4" in capsys.readouterr().err
    assert main(["search", "--resume", "--out", str(out), "--epochs", "2", "--no-progress"]) == 0
    again = yaml.safe_load((out / "config.yaml").read_text())
    assert again["epochs"] == 2 and again["mcmc"]["levels"] == 3 and set(again) & set(SECTIONS) == {"mcmc"}


def test_upgrade_moves_the_methods_settings_and_drops_the_others():
    old = _old_shape(SearchConfig.of(method="bilevel", stages=1).to_dict())
    new = SearchConfig.upgrade(old)
    assert new["bilevel"]["stages"] == 1 and "n_trials" not in flatten(new) and "mcmc" not in new
    assert SearchConfig.from_dict({k: v for k, v in new.items() if k != "override"}).bilevel.stages == 1


def test_train_config_is_unchanged_in_shape(tmp_path):
    cfg = TrainConfig(epochs=2, val_size=50)
    assert TrainConfig.from_dict(yaml.safe_load(to_yaml(cfg))) == TrainConfig(
        epochs=2, val_size=50, override=False
    )
    with pytest.raises(SettingError, match=r"val_size = 1.0: expected a number in \[0, 1\)"):
        TrainConfig(val_size=1.0)


def test_the_searcher_reads_its_section(tmp_path):
    cfg = SearchConfig.of(method="mcmc", levels=4, constraint="single", out=str(tmp_path))
    step_cls = get_searcher("mcmc")
    assert step_cls.method == "mcmc" and cfg.section is cfg.mcmc
    from autoaug.search.mcmc import MCMCStep

    assert MCMCStep(cfg).states.levels == 4 and not MCMCStep(cfg).per_op


def test_settings_md_is_current():
    spec = importlib.util.spec_from_file_location(
        "make_settings_doc", REPO / "scripts" / "make_settings_doc.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (REPO / "configs" / "SETTINGS.md").read_text() == module.render(), (
        "run python scripts/make_settings_doc.py"
    )


def test_the_shipped_configs_load():
    """Each file in configs/ is read by autoaug search; those without search settings also by
    autoaug train; the search file's sections are the methods'."""
    for path in sorted((REPO / "configs").glob("*.yaml")):
        data = yaml.safe_load(path.read_text())
        cfg = SearchConfig.from_dict(data, source=str(path))
        if set(data) <= set(TrainConfig.fields()):
            TrainConfig.from_dict(data, source=str(path))
        else:
            assert set(data) & set(SECTIONS) == set(SECTIONS), path
            assert cfg.section == SECTIONS[cfg.method].from_dict(data[cfg.method])
