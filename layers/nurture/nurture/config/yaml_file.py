"""One YAML file of the configuration, read with the path of any problem: every
loader (sources, scoring, sales, content, tracks, audiences, sweeps) reads
through it, so each error names the file, the path inside it and the problem."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, NoReturn

from nurture.core.errors import ConfigError
from nurture.core.rules import Condition, parse_condition


def _safe_loader(yaml: ModuleType) -> type:
    """PyYAML's safe loader on libyaml's parser where the wheel has it (the
    layer's manylinux wheels do): the same documents in the same Python types,
    about six times faster than the pure-Python parser, which made loading the
    configuration the largest part of every function's first invocation."""
    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class YamlFile:
    """Reads one YAML file, raising ConfigError with the path of any problem."""

    def __init__(self, directory: Path, name: str) -> None:
        self.name = name
        path = directory / name
        if not path.is_file():
            raise ConfigError(name, "", f"file not found in {directory}")
        import yaml

        try:
            self.root = yaml.load(path.read_text(), Loader=_safe_loader(yaml)) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(name, "", f"not valid YAML: {exc}") from exc
        if not isinstance(self.root, Mapping):
            self.fail("", "expected a mapping at the top level")

    def fail(self, path: str, reason: str) -> NoReturn:
        raise ConfigError(self.name, path, reason)

    def mapping(self, value: Any, path: str, required: bool = True) -> Mapping[str, Any]:
        if value is None and not required:
            return {}
        if not isinstance(value, Mapping):
            self.fail(path, "expected a mapping")
        return value

    def seq(self, value: Any, path: str, required: bool = True) -> list[Any]:
        if value is None and not required:
            return []
        if not isinstance(value, list):
            self.fail(path, "expected a list")
        return value

    def text(self, value: Any, path: str, pattern: re.Pattern[str] | None = None) -> str:
        if not isinstance(value, str) or not value.strip():
            self.fail(path, "expected a non-empty string")
        if pattern is not None and not pattern.match(value):
            self.fail(path, f"{value!r} must be lower-case letters, digits, '-', '_' or '.'")
        return value.strip()

    def number(self, value: Any, path: str, positive: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(path, "expected a number")
        if positive and value <= 0:
            self.fail(path, "expected a positive number")
        return float(value)

    def choice(self, value: Any, path: str, allowed: tuple[str, ...]) -> str:
        if value not in allowed:
            self.fail(path, f"{value!r} is not one of {', '.join(allowed)}")
        return value

    def conditions(self, value: Any, path: str) -> tuple[Condition, ...]:
        where = self.mapping(value, path, required=False)
        return tuple(parse_condition(str(key), spec, f"{path}.{key}", self.fail) for key, spec in where.items())

    def only(self, value: Mapping[str, Any], path: str, allowed: tuple[str, ...]) -> None:
        for key in value:
            if key not in allowed:
                self.fail(f"{path}.{key}" if path else str(key), f"unknown key; expected one of {', '.join(allowed)}")

    def patterns(self, value: Any, path: str) -> tuple[tuple[str, tuple[re.Pattern[str], ...]], ...]:
        result = []
        for name, regexes in self.mapping(value, path).items():
            compiled = []
            for i, regex in enumerate(self.seq(regexes, f"{path}.{name}")):
                try:
                    compiled.append(re.compile(self.text(regex, f"{path}.{name}[{i}]"), re.IGNORECASE))
                except re.error as exc:
                    self.fail(f"{path}.{name}[{i}]", f"invalid regular expression: {exc}")
            result.append((str(name), tuple(compiled)))
        return tuple(result)


def events_of(f: YamlFile, value: Any, path: str) -> frozenset[str]:
    names = [value] if isinstance(value, str) else f.seq(value, path)
    if not names:
        f.fail(path, "name at least one event")
    return frozenset(f.text(name, f"{path}[{i}]") for i, name in enumerate(names))


def names_of(f: YamlFile, value: Any, path: str) -> tuple[str, ...]:
    return tuple(f.text(v, f"{path}[{i}]") for i, v in enumerate(f.seq(value, path, required=False)))
