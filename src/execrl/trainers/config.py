"""Trainer configs from YAML and flags: one flat dataclass per entry point, checked field by field.

`load_config(cls, path, overrides)` builds `cls` from a YAML mapping, then applies `overrides`
(already-parsed flag values, None meaning "not given"). Values are checked against the field's
annotation (`int`, `float`, `str`, `bool`, `X | None`); an unknown key or a value of the wrong type
is a `DataError` naming the file (or "flag") and the field. Range checks belong to the dataclass's
`__post_init__`. YAML is a saved copy of the dataclass (`dump_config`), not a second language.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import types
import typing
from typing import Any, TypeVar

from execrl.data.jsonl import DataError, PathLike, json_type

__all__ = [
    "at_least_one",
    "coerce",
    "dump_config",
    "field_docs",
    "field_error",
    "load_config",
    "not_negative",
    "one_of",
    "require",
    "sampling_checks",
]

REPORTERS = ("tensorboard", "wandb", "none")

T = TypeVar("T")


def coerce(source: str, name: str, value: Any, hint: Any) -> Any:
    """`value` as the field's type (an int is accepted as a float; strings are parsed for flags)."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return coerce(source, name, value, args[0])
    if hint is bool:
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        if isinstance(value, bool):
            return value
    elif hint is int:
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        elif isinstance(value, int) and not isinstance(value, bool):
            return value
    elif hint is float:
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif hint is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    expected = {bool: "a boolean", int: "an integer", float: "a number", str: "a string"}.get(hint, str(hint))
    shown = repr(value) if isinstance(value, str) else json_type(value)
    raise DataError(f"{source}: field {name!r} must be {expected}, got {shown}")


def field_error(cfg: Any, name: str, why: str) -> DataError:
    """The error for a bad value of a config's field: names the field, why, and the value."""
    return DataError(f"config: field {name!r} {why}, got {getattr(cfg, name)!r}")


def require(cfg: Any, *names: str) -> None:
    """Raise a DataError naming the first of `names` that `cfg` leaves empty."""
    for name in names:
        if not getattr(cfg, name):
            raise DataError(f"config: field {name!r} is required")


def at_least_one(cfg: Any, *names: str) -> None:
    """Raise the field error of the first of `names` below 1."""
    for name in names:
        if getattr(cfg, name) < 1:
            raise field_error(cfg, name, "must be at least 1")


def not_negative(cfg: Any, *names: str) -> None:
    """Raise the field error of the first of `names` below 0."""
    for name in names:
        if getattr(cfg, name) < 0:
            raise field_error(cfg, name, "must not be negative")


def one_of(cfg: Any, name: str, choices: tuple[str, ...]) -> None:
    """Raise the field error of `name` unless its value is one of `choices`."""
    if getattr(cfg, name) not in choices:
        raise field_error(cfg, name, f"must be one of {', '.join(choices)}")


def sampling_checks(cfg: Any) -> None:
    """The fields that the trainers that sample and execute (RL, PLUM) share: lr, the sandbox's
    timeout, the sampling temperature and top_p, LoRA's dropout and the metric sinks."""
    bad = functools.partial(field_error, cfg)
    if not cfg.lr > 0:
        raise bad("lr", "must be positive")
    if not cfg.timeout > 0:
        raise bad("timeout", "must be positive")
    if cfg.temperature <= 0:
        raise bad("temperature", "must be positive (training samples; evaluation is greedy)")
    if not 0 < cfg.top_p <= 1:
        raise bad("top_p", "must be in (0, 1]")
    if not 0 <= cfg.lora_dropout < 1:
        raise bad("lora_dropout", "must be in [0, 1)")
    for sink in reporters(cfg.report_to):
        if sink not in REPORTERS:
            raise bad("report_to", f"must name some of {', '.join(REPORTERS)}")


def reporters(report_to: str) -> list[str]:
    """The metric sinks named by a comma-separated `report_to` ("none" names none)."""
    return [s.strip() for s in report_to.split(",") if s.strip() and s.strip() != "none"]


def load_config(cls: type[T], path: PathLike | None = None, overrides: dict[str, Any] | None = None) -> T:
    """An instance of the dataclass `cls` from the YAML file at `path` and then `overrides`."""
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    if path is not None:
        import yaml

        name = os.fspath(path)
        try:
            with open(name, encoding="utf-8") as f:
                loaded = yaml.safe_load(f)
        except FileNotFoundError:
            raise DataError(f"{name}: no such file")
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            raise DataError(f"{name}: not a readable YAML file ({type(e).__name__})")
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise DataError(f"{name}: expected a mapping of field: value, got {json_type(loaded)}")
        for key, value in loaded.items():
            if key not in fields:
                raise DataError(f"{name}: unknown field {key!r} (fields: {', '.join(sorted(fields))})")
            values[key] = coerce(name, key, value, hints[key])
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key not in fields:
            raise DataError(f"flag: unknown field {key!r}")
        values[key] = coerce(f"--{key.replace('_', '-')}", key, value, hints[key])
    return cls(**values)


def dump_config(values: dict[str, Any]) -> str:
    """The YAML text of a config's fields, in field order."""
    import yaml

    return str(yaml.safe_dump(values, sort_keys=False))


def field_docs(cls: type) -> dict[str, str]:
    """The docstring under each field of a dataclass (read from its source), for `--help`."""
    import ast
    import inspect
    import textwrap

    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
    docs = {}
    for field, doc in zip(body, body[1:]):
        if (
            isinstance(field, ast.AnnAssign)
            and isinstance(field.target, ast.Name)
            and isinstance(doc, ast.Expr)
            and isinstance(doc.value, ast.Constant)
            and isinstance(doc.value.value, str)
        ):
            docs[field.target.id] = doc.value.value.strip()
    return docs
