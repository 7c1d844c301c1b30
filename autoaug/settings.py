"""Settings: config dataclasses whose fields carry their own documentation and range.

A field is declared once with :func:`setting`: its default, a help line (what it does, its
unit) and its :class:`Limit`. That one declaration is the command line's ``--flag`` and its
help, the type and range check on construction, the comment above the key in a run's
resolved ``config.yaml`` (:func:`to_yaml`), and the settings reference
(:func:`settings_markdown`, ``configs/SETTINGS.md``). A config may hold sections, themselves
:class:`Settings` (``autoaug search``'s ``mcmc:``, ``bilevel:``, ``optuna:``), which nest in
YAML and in JSON and are named ``section.key`` in messages.

Examples:
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Demo(Settings):
    ...     rate: float = setting(0.1, help="step size", limit=Limit(0, low_open=True))
    >>> Demo(rate=2).rate  # an int where a float is expected becomes a float
    2.0
    >>> Demo(rate=0)
    Traceback (most recent call last):
    ...
    autoaug.settings.SettingError: rate = 0: expected a number > 0
    >>> print(to_yaml(Demo()), end="")
    # step size (> 0)
    rate: 0.1
"""

from __future__ import annotations

import dataclasses
import functools
import math
import typing
from pathlib import Path
from typing import Any, ClassVar, get_args

import yaml


class SettingError(ValueError):
    """A setting of the wrong type or out of its range; names the setting and what it allows."""

    def __init__(self, name: str, value: Any, expected: str, source: str | None = None):
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{name} = {value!r}: expected {expected}")
        self.name, self.value, self.expected = name, value, expected


@dataclasses.dataclass(frozen=True)
class Limit:
    """The allowed range of a numeric setting: ``low``/``high`` (None: unbounded), each end
    included unless ``*_open``."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def __contains__(self, v: float) -> bool:
        if self.low is not None and (v <= self.low if self.low_open else v < self.low):
            return False
        return self.high is None or (v < self.high if self.high_open else v <= self.high)

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        if self.low is None:
            return f"{'<' if self.high_open else '<='} {self.high:g}"
        return (
            f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        )


def setting(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    limit: Limit | None = None,
    group: str | None = None,
    factory: Any = dataclasses.MISSING,
) -> Any:
    """A config field with its documentation, written once.

    Args:
        default: the default value (or ``factory``: a callable that makes it, for a section).
        help: what the setting does and its unit, in a few words; the ``--flag``'s help line,
            the comment in ``config.yaml`` and the line in ``configs/SETTINGS.md``.
        limit: the allowed range of a number.
        group: the heading the flag is listed under in ``--help`` (data, training, run, ...).
    """
    return dataclasses.field(
        default=default, default_factory=factory, metadata={"help": help, "limit": limit, "group": group}
    )


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def field_kind(cls: type, name: str) -> tuple[type, bool]:
    """The type of setting ``name`` of ``cls`` without ``None``, and whether it may be None."""
    hint = _hints(cls)[name]
    args = [a for a in get_args(hint) if a is not type(None)]
    return (args[0] if args else hint), type(None) in get_args(hint)


def _kind_name(kind: type, limit: Limit | None) -> str:
    what = {int: "an integer", float: "a number"}.get(kind, getattr(kind, "__name__", str(kind)))
    return f"{what} {limit}" if limit is not None else what


def is_section(kind: Any) -> bool:
    return isinstance(kind, type) and issubclass(kind, Settings)


class Settings:
    """Base of the config dataclasses: checks every field on construction (type and range,
    from the field's :func:`setting`), reads and writes plain mappings.

    ``SECTION`` is the key a section is held under in its parent (``"mcmc"``); errors name its
    settings ``mcmc.epsilon``.
    """

    SECTION: ClassVar[str] = ""

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Check every setting's type and range (and normalize ints given for floats).

        Raises:
            SettingError: the first bad setting, its value and what it allows.
        """
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            object.__setattr__(self, f.name, self.check(f.name, getattr(self, f.name)))

    @classmethod
    def fields(cls) -> dict[str, dataclasses.Field]:
        return {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]

    @classmethod
    def key(cls, name: str) -> str:
        """A setting's name as messages and ``config.yaml`` spell it: ``mcmc.epsilon``."""
        return f"{cls.SECTION}.{name}" if cls.SECTION else name

    @classmethod
    def check(cls, name: str, value: Any) -> Any:
        """``value`` as setting ``name`` takes it (an int where a float is expected becomes a
        float; a mapping given for a section becomes the section), or :class:`SettingError`."""
        known = cls.fields()
        if name not in known:
            raise ValueError(f"unknown setting {cls.key(name)!r}; known: {sorted(known)}")
        kind, optional = field_kind(cls, name)
        limit = known[name].metadata.get("limit")
        label = cls.key(name)
        if is_section(kind):
            if isinstance(value, kind):
                return value
            if value is None:
                return kind()
            if isinstance(value, dict):
                return kind.from_dict(value, source=None)
            raise SettingError(label, value, f"a mapping of {kind.SECTION} settings")
        raw = value
        if value is None:
            if optional:
                return None
            raise SettingError(label, value, f"{_kind_name(kind, limit)}, not empty")
        if kind is bool:
            if not isinstance(value, bool):
                raise SettingError(label, value, "true or false")
            return value
        if kind is str:
            if not isinstance(value, str):
                raise SettingError(label, value, "a string")
            return value
        if kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise SettingError(label, value, _kind_name(kind, limit))
        elif kind is float:
            number = value
            if isinstance(value, str):  # YAML 1.1 reads 1e-4 (no dot) as a string
                try:
                    number = float(value)
                except ValueError:
                    raise SettingError(label, value, _kind_name(kind, limit)) from None
            if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
                raise SettingError(label, value, _kind_name(kind, limit))
            value = float(number)
        if limit is not None and value not in limit:
            raise SettingError(label, raw, _kind_name(kind, limit))
        return value

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str | None = "config") -> Any:
        """A config from a mapping of settings (sections as nested mappings); errors name
        ``source`` and the setting."""
        known = cls.fields()
        unknown = sorted(set(data) - set(known))
        where = f"{source}: " if source else ""
        if unknown:
            raise ValueError(
                f"{where}unknown setting(s) {[cls.key(k) for k in unknown]}; known: {sorted(known)}"
            )
        data = dict(data)
        for name in known:
            kind = field_kind(cls, name)[0]
            if is_section(kind) and isinstance(data.get(name), dict):
                data[name] = kind.from_dict(data[name], source)
        try:
            return cls(**data)
        except SettingError as e:
            raise SettingError(e.name, e.value, e.expected, source) from None

    def to_dict(self) -> dict[str, Any]:
        """The settings as a plain mapping, sections nested."""
        return dataclasses.asdict(self)  # type: ignore[call-overload]


def flatten(values: dict[str, Any]) -> dict[str, Any]:
    """``{"mcmc": {"epsilon": 0.6}}`` -> ``{"mcmc.epsilon": 0.6}`` (one level of sections)."""
    flat: dict[str, Any] = {}
    for k, v in values.items():
        if isinstance(v, dict):
            flat.update({f"{k}.{kk}": vv for kk, vv in v.items()})
        else:
            flat[k] = v
    return flat


def help_line(f: dataclasses.Field, default: bool = True) -> str:
    """A field's help, its range and (``default``) its default: ``margin ... (>= 0; default 0.6)``."""
    limit = f.metadata.get("limit")
    extra = [str(limit)] if limit is not None else []
    if default and f.default is not dataclasses.MISSING and f.default is not None:  # None: the help says
        extra.append(f"default {f.default}")
    return f.metadata.get("help", "") + (f" ({'; '.join(extra)})" if extra else "")


def to_yaml(config: Settings, header: str = "") -> str:
    """``config`` (its :meth:`~Settings.to_dict`) as YAML with each setting's help line as a
    comment above it; what ``yaml.safe_load`` reads back is ``config.to_dict()``."""
    values = config.to_dict()
    lines = [f"# {line}" for line in header.splitlines()]

    def emit(cls: type, data: dict[str, Any], indent: str) -> None:
        fields = cls.fields()
        for k, v in data.items():
            f = fields.get(k)
            if f is not None and f.metadata.get("help"):
                lines.append(f"{indent}# {help_line(f, default=False)}")
            kind = field_kind(cls, k)[0] if f is not None else None
            if is_section(kind) and isinstance(v, dict):
                lines.append(f"{indent}{k}:")
                emit(kind, v, indent + "  ")
            else:
                dumped = yaml.safe_dump({k: v}, default_flow_style=True, width=10**6).strip()
                lines.append(f"{indent}{dumped[1:-1]}")  # {key: value} without the braces

    emit(type(config), values, "")
    return "\n".join(lines) + "\n"


def settings_markdown(cls: type, title: str, skip: tuple[str, ...] = ()) -> str:
    """Markdown tables of ``cls``'s settings, one for its own and one per section: key, flag,
    default, what it does (the settings reference, ``configs/SETTINGS.md``, is made of these)."""
    rows, sections = [], []
    for name, f in cls.fields().items():
        kind = field_kind(cls, name)[0]
        if is_section(kind):
            sections.append(kind)
        elif name not in skip:
            default = "" if f.default is None else f"`{f.default}`"
            rows.append(
                f"| `{cls.key(name)}` | `{'--' + name.replace('_', '-')}` | {default} | {help_line(f, False)} |"
            )
    out = [f"## {title}", "", "| key | flag | default | what it does |", "|---|---|---|---|", *rows]
    for kind in sections:
        out += ["", settings_markdown(kind, f"{title}: `{kind.SECTION}:` (`--method {kind.SECTION}`)")]
    return "\n".join(out)


def read_config(path: str | Path) -> dict[str, Any]:
    """Read a YAML config (``yaml.safe_load``: no code runs); errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"config file not found: {p}")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as e:
        raise ValueError(f"{p}: not valid YAML: {_yaml_problem(e)}") from None
    except UnicodeDecodeError:
        raise ValueError(f"{p}: not a text file (expected YAML settings)") from None
    except RecursionError:
        raise ValueError(f"{p}: nested too deeply to be a settings file") from None
    if not isinstance(data, dict):
        raise ValueError(f"{p}: expected a mapping of settings, got {type(data).__name__}")
    return data


def _yaml_problem(e: yaml.YAMLError) -> str:
    """The parser's complaint in one line (its own text quotes the file over several)."""
    problem = getattr(e, "problem", None) or getattr(e, "context", None) or type(e).__name__
    mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
    where = f" at line {mark.line + 1} column {mark.column + 1}" if mark is not None else ""
    text = " ".join(str(problem).split()) + where
    if isinstance(e, yaml.constructor.ConstructorError):
        text += " (settings are plain values: tags that build objects are refused)"
    return text


__all__ = [
    "Limit",
    "SettingError",
    "Settings",
    "flatten",
    "help_line",
    "read_config",
    "setting",
    "settings_markdown",
    "to_yaml",
]
