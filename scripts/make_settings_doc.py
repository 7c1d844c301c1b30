"""Write configs/SETTINGS.md, the reference of every setting of ``autoaug train`` and ``autoaug search``,
from the settings' own declarations (autoaug/settings.py: the help line each field carries, as
the flags and the resolved config.yaml show it). tests/test_settings.py checks it is current.

Run:
    python scripts/make_settings_doc.py            # rewrites configs/SETTINGS.md
"""

from __future__ import annotations

from pathlib import Path

from autoaug.policy import atomic_write_text
from autoaug.search import SearchConfig
from autoaug.settings import settings_markdown
from autoaug.train import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
INTRO = """# Settings

Every setting of `autoaug train` and `autoaug search`: its key in a `--config` YAML file, its
flag, its default and what it does (with its unit and allowed range). The same line is the
flag's help (`autoaug search --method M --help`) and the comment above the key in a run's
resolved `config.yaml`. A method's settings sit in its own section of a YAML file
(`mcmc: {epsilon: 0.6}`); on the command line they are plain flags (`--epsilon 0.6`) of
that method. Made by `python scripts/make_settings_doc.py`: edit the declarations
(autoaug/train.py, autoaug/search/base.py), not this file.
"""


def render() -> str:
    parts = [INTRO.strip(), settings_markdown(TrainConfig, "autoaug train"),
             settings_markdown(SearchConfig, "autoaug search", skip=("policy",))]  # fmt: skip
    return "\n\n".join(parts) + "\n"


if __name__ == "__main__":
    path = atomic_write_text(ROOT / "configs" / "SETTINGS.md", render())
    print(f"wrote {path}")
