"""Where configuration values come from, and errors that say so without showing values.

Reads YAML keeping each value's line, replaces ``${VAR}`` / ``${VAR:default}`` from the
environment, applies ``GOCOMM_<SECTION>__<KEY>`` overrides, and turns pydantic's validation
errors into :class:`~gocomm.errors.ConfigError` messages that name the field and its source
(``file:line`` or the variable) and never its value.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import yaml
from pydantic import ValidationError
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.resolver import Resolver

from gocomm.errors import ConfigError

__all__ = [
    "RESERVED_VARIABLES",
    "SourceMap",
    "config_error",
    "describe_source",
    "env_overrides",
    "format_path",
    "has_override_variables",
    "read_yaml",
    "scrubbed_problems",
]

Path = tuple[str | int, ...]

ENV_PREFIX = "GOCOMM_"
#: Variables gocomm reads for other purposes; they never override settings.
RESERVED_VARIABLES = frozenset({"GOCOMM_CONFIG", "GOCOMM_DISABLE_PLUGINS", "GOCOMM_TEST_REDIS_URL"})


class SourceMap:
    """The source of each configured value, by path; ``default`` for anything unrecorded."""

    def __init__(self, default: str) -> None:
        self.default = default
        self.entries: dict[Path, str] = {}

    def record(self, path: Path, source: str) -> None:
        self.entries[path] = source

    def replace(self, path: Path, source: str) -> None:
        """``path`` was set whole from ``source``: forget what was recorded beneath it."""
        depth = len(path)
        for known in [p for p in self.entries if p[:depth] == path]:
            del self.entries[known]
        self.entries[path] = source

    def lookup(self, path: Path) -> str:
        """The source of ``path``; else of a value set beneath it (a variable that brought in an
        unknown key); else of its nearest recorded parent."""
        exact = self.entries.get(path)
        if exact is not None:
            return exact
        depth = len(path)
        for known, source in self.entries.items():
            if depth and known[:depth] == path:
                return source
        for depth in range(len(path) - 1, 0, -1):
            parent = self.entries.get(path[:depth])
            if parent is not None:
                return parent
        return self.default

    def __repr__(self) -> str:
        return f"SourceMap({self.default!r}, {len(self.entries)} entries)"


def format_path(path: Path) -> str:
    """``("sms", "vendors", 0, "host")`` → ``sms.vendors[0].host``."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text or "the configuration"


def describe_source(path: Path, sources: SourceMap) -> str:
    """``sms.retry.max_attempts (config.yaml:14)``."""
    return f"{format_path(path)} ({sources.lookup(path)})"


def config_error(problems: Sequence[str]) -> ConfigError:
    """One :class:`ConfigError` for every problem found; ``.problems`` keeps them apart."""
    noun = "problem" if len(problems) == 1 else "problems"
    error = ConfigError(f"invalid configuration ({len(problems)} {noun}): " + "; ".join(problems))
    error.problems = list(problems)  # type: ignore[attr-defined]
    return error


# ------------------------------------------------------------------------------------- YAML

_PLACEHOLDER = re.compile(r"\$\$\{|\$\{(?P<name>[^}:]*)(?::(?P<default>[^}]*))?\}")
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SURROGATE = re.compile("[\ud800-\udfff]")


#: Most values a configuration may expand to through aliases (``*name``). An alias is read
#: again wherever it is used, so nested anchors grow exponentially ("billion laughs"): a few
#: hundred bytes would take minutes and gigabytes. Real configurations reuse a few sections.
ALIAS_BUDGET = 10_000
#: Deepest nesting of lists and mappings read (the YAML composer itself recurses too).
MAX_DEPTH = 100
#: Most YAML events (values, keys, starts and ends of lists and mappings) in a configuration:
#: a real one has hundreds; a megabyte of values would take seconds and a hundred MB to read.
MAX_EVENTS = 20_000


class _Reader:
    """Walks a composed YAML node tree into plain data, recording the line of every value."""

    def __init__(self, filename: str, environ: Mapping[str, str]) -> None:
        self.filename = filename
        self.environ = environ
        self.sources = SourceMap(filename)
        self.constructor = SafeConstructor()
        self.seen: set[int] = set()
        #: Values read again through an alias so far (bounded by ``ALIAS_BUDGET``).
        self.alias_values = 0

    def where(self, node: Node) -> str:
        return f"{self.filename}:{node.start_mark.line + 1}"

    def fail(self, node: Node, path: Path, problem: str) -> ConfigError:
        field = f" {format_path(path)}:" if path else ""
        return ConfigError(f"{self.where(node)}:{field} {problem}")

    def read(self, node: Node, path: Path) -> Any:
        # The composer returns an aliased node itself, so a node met twice came through an alias.
        if id(node) in self.seen:
            self.alias_values += 1
            if self.alias_values > ALIAS_BUDGET:
                raise self.fail(
                    node,
                    path,
                    f"aliases expand to more than {ALIAS_BUDGET} values; write the "
                    "configuration out or use fewer nested aliases",
                )
        else:
            self.seen.add(id(node))
        if len(path) > MAX_DEPTH:
            raise self.fail(node, path[:3], f"is nested more than {MAX_DEPTH} levels deep")
        if isinstance(node, MappingNode):
            return self.read_mapping(node, path)
        if isinstance(node, SequenceNode):
            items = []
            for index, item in enumerate(node.value):
                self.sources.record((*path, index), self.where(item))
                items.append(self.read(item, (*path, index)))
            return items
        value = self.scalar(node, path)
        if isinstance(value, str):
            value = self.interpolate(value, node, path)
            if _SURROGATE.search(value):
                raise self.fail(
                    node, path, "contains a lone surrogate (\\ud800-\\udfff), not valid text"
                )
        return value

    def scalar(self, node: Node, path: Path) -> Any:
        if not isinstance(node, ScalarNode):
            raise self.fail(node, path, "must be a plain value here, not a list or mapping")
        try:
            return self.constructor.construct_object(node)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError):
            # Not the error's text: int() and friends quote the value.
            kind = node.tag.rsplit(":", 1)[-1]
            raise self.fail(node, path, f"is not a valid {kind}") from None

    def read_mapping(self, node: MappingNode, path: Path) -> dict[str, Any]:
        self.constructor.flatten_mapping(node)  # resolves `<<` merge keys
        mapping: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = self.scalar(key_node, path) if isinstance(key_node, ScalarNode) else None
            if not isinstance(key, str):
                raise self.fail(key_node, path, "keys must be text")
            if key in mapping:
                raise self.fail(key_node, (*path, key), "is given twice; keep one")
            self.sources.record((*path, key), self.where(key_node))
            mapping[key] = self.read(value_node, (*path, key))
        return mapping

    def interpolate(self, text: str, node: Node, path: Path) -> str:
        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$${":
                return "${"  # an escaped placeholder stays literal
            name = match.group("name")
            if not _VARIABLE_NAME.fullmatch(name):
                raise self.fail(
                    node,
                    path,
                    "a placeholder must be ${NAME} or ${NAME:default}, with NAME "
                    "letters, digits and underscores (write $${ for a literal ${)",
                )
            value = self.environ.get(name)
            if value is not None:
                return value
            default = match.group("default")
            if default is not None:
                return default
            raise self.fail(
                node,
                path,
                f"environment variable {name} is not set; set it or give a "
                f"default as ${{{name}:default}}",
            )

        return _PLACEHOLDER.sub(replace, text) if "${" in text else text


# libyaml when PyYAML was built with it: fast, and it refuses deep nesting at once, where the
# pure-Python scanner takes quadratic time over deeply nested flow collections.
_LOADER: type[yaml.SafeLoader] | type[yaml.CSafeLoader] = getattr(
    yaml, "CSafeLoader", yaml.SafeLoader
)


def read_yaml(text: str, filename: str, environ: Mapping[str, str]) -> tuple[Any, SourceMap]:
    """Parse ``text``, interpolating placeholders from ``environ``; returns data and sources."""
    reader = _Reader(filename, environ)
    try:
        # Counted on the event stream first, which is cheap, before any node is built.
        for count, _ in enumerate(yaml.parse(text, Loader=_LOADER), start=1):
            if count > MAX_EVENTS:
                raise ConfigError(
                    f"{filename}: holds more than {MAX_EVENTS} YAML values; a gocomm "
                    "configuration needs a few hundred (is this the right file?)"
                )
        node = yaml.compose(text, Loader=_LOADER)
        data = None if node is None else reader.read(node, ())
    except yaml.MarkedYAMLError as exc:
        # Only the problem and its position: str(exc) quotes the line, which may hold a secret.
        line = f":{exc.problem_mark.line + 1}" if exc.problem_mark is not None else ""
        raise ConfigError(
            f"{filename}{line}: not valid YAML: {exc.problem or exc.context or 'syntax error'}"
        ) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{filename}: not valid YAML ({type(exc).__name__})") from None
    except RecursionError:  # the YAML composer recurses once per level of nesting
        raise ConfigError(
            f"{filename}: nested too deeply to read (at most {MAX_DEPTH} levels of lists and "
            "mappings)"
        ) from None
    return data, reader.sources


# ------------------------------------------------------------------------------ environment


def _override_variables(environ: Mapping[str, str]) -> Iterator[str]:
    for name in environ:
        if name.startswith(ENV_PREFIX) and name not in RESERVED_VARIABLES:
            yield name


def has_override_variables(environ: Mapping[str, str]) -> bool:
    """Whether any ``GOCOMM_`` variable other than the reserved ones is set."""
    return any(True for _ in _override_variables(environ))


_SCALAR_TAGS = {
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
}


def parse_env_value(name: str, value: str) -> Any:
    """A variable's value: JSON when it starts with ``[`` or ``{``, else a YAML plain scalar.

    Only numbers, booleans and null are converted; anything else stays the exact text (no
    comment stripping, no quote removal: a password with ``#`` in it stays whole).
    """
    stripped = value.strip()
    if stripped.startswith(("[", "{")):
        try:
            return json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{name}: not valid JSON ({exc.msg} at character {exc.pos}); a list or a "
                "mapping is given whole as one JSON value"
            ) from None
        except (ValueError, RecursionError):  # an integer of thousands of digits, deep nesting
            raise ConfigError(
                f"{name}: not usable JSON (an integer over 4300 digits or nesting too deep)"
            ) from None
    tag = Resolver().resolve(ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
    if tag in _SCALAR_TAGS:
        try:
            return SafeConstructor().construct_object(ScalarNode(tag, value))
        except (ValueError, OverflowError):  # not its text: int() quotes the value
            raise ConfigError(f"{name}: not a valid {tag.rsplit(':', 1)[-1]}") from None
    if _SURROGATE.search(value):
        raise ConfigError(f"{name}: contains bytes that are not valid text (a lone surrogate)")
    return value


def env_overrides(
    data: dict[str, Any], sources: SourceMap, environ: Mapping[str, str], sections: Sequence[str]
) -> None:
    """Apply every ``GOCOMM_<SECTION>__<KEY>...`` variable to ``data`` (in place).

    Unknown sections are refused here; unknown keys below a section are refused by the models,
    with the variable named as the source.
    """
    overrides: list[tuple[Path, str]] = []
    unknown: list[str] = []
    for name in sorted(_override_variables(environ)):
        parts = name[len(ENV_PREFIX) :].split("__")
        if any(not part for part in parts) or parts[0].lower() not in sections:
            unknown.append(name)
            continue
        overrides.append((tuple(part.lower() for part in parts), name))
    if unknown:
        sections_text = ", ".join(s.upper() for s in sections)
        raise config_error(
            [
                f"unknown variable {name}: gocomm reads {', '.join(sorted(RESERVED_VARIABLES))} "
                f"and GOCOMM_<SECTION>__<KEY> with SECTION one of {sections_text} (e.g. "
                "GOCOMM_SMS__RETRY__MAX_ATTEMPTS); unset it or fix its name"
                for name in unknown
            ]
        )
    # Shorter paths first, so GOCOMM_SMS__RETRY='{...}' is refined by GOCOMM_SMS__RETRY__X.
    for path, name in sorted(overrides, key=lambda item: len(item[0])):
        value = parse_env_value(name, environ[name])
        _set_path(data, path, value, name)
        sources.replace(path, name)


def _set_path(data: dict[str, Any], path: Path, value: Any, name: str) -> None:
    target = data
    for depth, part in enumerate(path[:-1]):
        current = target.get(str(part))
        if isinstance(current, list):
            raise ConfigError(
                f"{name}: {format_path(path[: depth + 1])} is a list, and lists are given whole: "
                f"set {ENV_PREFIX}{'__'.join(str(p).upper() for p in path[: depth + 1])} to a "
                "JSON list instead"
            )
        if not isinstance(current, dict):
            current = {}
            target[str(part)] = current
        target = current
    target[str(path[-1])] = value


# ------------------------------------------------------------------------------------ errors


def _has(container: Any, part: str | int) -> bool:
    if isinstance(container, Mapping):
        return part in container
    return isinstance(container, list) and isinstance(part, int) and 0 <= part < len(container)


def _clean_location(location: Sequence[str | int], data: Any) -> Path:
    """The user's path for a pydantic location: union tags and validator names dropped."""
    path: list[str | int] = []
    current = data
    last = len(location) - 1
    for index, part in enumerate(location):
        if _has(current, part):
            path.append(part)
            current = current[part]
        elif index == last and isinstance(current, Mapping | None) and isinstance(part, str):
            path.append(part)  # a missing or unknown key
            current = None
        # else: a union member's tag (`timeout`, `function-after[...]`): not the user's path
    return tuple(path)


def _value_at(data: Any, path: Path) -> Any:
    current = data
    for part in path:
        if not _has(current, part):
            return None
        current = current[part]
    return current


def _leaves(value: Any) -> Iterator[str]:
    if isinstance(value, Mapping):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _leaves(item)
    elif value is not None and not isinstance(value, bool):
        yield str(value)


def _scrub(message: str, value: Any) -> str:
    """``message`` with any text of ``value`` removed: a validator may have quoted it."""
    for leaf in sorted(set(_leaves(value)), key=len, reverse=True):
        if len(leaf) >= 6:
            message = message.replace(leaf, "<value hidden>")
        elif len(leaf) >= 3:
            # Short values only as whole words, so that "be" cannot eat "should be".
            message = re.sub(rf"(?<![\w.]){re.escape(leaf)}(?![\w.])", "<value hidden>", message)
    return message


AllowedKeys = Callable[[Path], Sequence[str] | None]


def _message(error: Mapping[str, Any], path: Path, allowed: AllowedKeys | None) -> tuple[Path, str]:
    kind = error["type"]
    context = error.get("ctx") or {}
    if kind == "missing":
        return path, "is required"
    if kind == "extra_forbidden":
        keys = allowed(path[:-1]) if allowed is not None else None
        known = f"; the keys here are {', '.join(keys)}" if keys else ""
        return path, f"is not a known key{known}"
    if kind == "union_tag_invalid":
        key = str(context.get("discriminator", "")).strip("'")
        return (*path, key), f"must be one of {context.get('expected_tags', '')}"
    if kind == "union_tag_not_found":
        key = str(context.get("discriminator", "")).strip("'")
        return path, f"needs the key {key!r} to say which kind it is"
    message = str(error.get("msg", "is not valid"))
    for prefix in ("Value error, ", "Assertion failed, "):
        message = message.removeprefix(prefix)
    return path, message


def scrubbed_problems(
    exc: ValidationError,
    sources: SourceMap,
    *,
    data: Any,
    prefix: Path = (),
    allowed: AllowedKeys | None = None,
) -> list[str]:
    """One line per validation error: the field, its source and what is wrong; no value."""
    problems = []
    for error in exc.errors(include_input=False, include_url=False):
        relative = _clean_location(error["loc"], data)
        relative, message = _message(error, relative, allowed)
        message = _scrub(message, _value_at(data, relative))
        path = (*prefix, *relative)
        problems.append(f"{describe_source(path, sources)}: {message}")
    return problems
