"""Write torchvision's fixed policies in autoaug's format into policies/.

The files are generated from :mod:`autoaug.reference` (which transcribes torchvision's
tables); tests/test_reference.py checks that the shipped files equal what this script writes.

Run: python scripts/make_reference_policies.py
"""

from pathlib import Path

from autoaug.reference import builtin_policies

OUT = Path(__file__).resolve().parent.parent / "policies"
ALIASES = {"autoaugment"}  # same as autoaugment_imagenet


def main() -> None:
    for name, make in builtin_policies().items():
        if name in ALIASES or name == "none":
            continue
        path = make().save(OUT / f"{name}.json")
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
