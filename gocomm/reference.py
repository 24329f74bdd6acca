"""The configuration reference page (``docs/reference.md``), generated from the models.

Docs tooling: ``docs/hooks.py`` renders it when the site is built, and a test keeps the
committed page current. Nothing at run time imports this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import UnionType
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, SecretStr

from gocomm.channels import CHANNELS
from gocomm.config import (
    BreakerSettings,
    ChannelSettings,
    ConcurrencyLimit,
    ErrorFailover,
    ExponentialInterval,
    FixedInterval,
    PrometheusSettings,
    QueueSettings,
    RedisSettings,
    RetrySettings,
    RouteSettings,
    Settings,
    SlidingWindowLimit,
    TelemetrySettings,
    TimeoutFailover,
    TokenBucketLimit,
    UniformInterval,
    VendorEntry,
    WeightedFailover,
    default_settings_text,
)
from gocomm.masking import SecretUrl, mask_value

if TYPE_CHECKING:
    from gocomm.plugins import VendorRegistry

__all__ = ["REFERENCE_SECTIONS", "reference_markdown"]

#: Every model the reference documents, with the YAML path it appears at.
REFERENCE_SECTIONS: tuple[tuple[str, type[BaseModel]], ...] = (
    ("top level", Settings),
    ("redis", RedisSettings),
    ("<channel>", ChannelSettings),
    ("<channel>.vendors[]", VendorEntry),
    ("<channel>.failover (mode: error)", ErrorFailover),
    ("<channel>.failover (mode: timeout)", TimeoutFailover),
    ("<channel>.failover (mode: weighted)", WeightedFailover),
    ("<channel>.breaker", BreakerSettings),
    ("<channel>.routes[]", RouteSettings),
    ("<channel>.ratelimit (algorithm: sliding_window)", SlidingWindowLimit),
    ("<channel>.ratelimit (algorithm: token_bucket)", TokenBucketLimit),
    ("<channel>.ratelimit (algorithm: concurrency)", ConcurrencyLimit),
    ("<channel>.retry", RetrySettings),
    ("<channel>.retry.interval (kind: fixed)", FixedInterval),
    ("<channel>.retry.interval (kind: uniform)", UniformInterval),
    ("<channel>.retry.interval (kind: exponential)", ExponentialInterval),
    ("queue", QueueSettings),
    ("telemetry", TelemetrySettings),
    ("telemetry.prometheus", PrometheusSettings),
)


_SCALAR_NAMES = {str: "text", int: "integer", float: "number", bool: "boolean"}


def _type_text(annotation: Any) -> str:
    """A reader's name for a field's type: `memory` or `redis`, number or null, mapping..."""
    origin = get_origin(annotation)
    arguments = get_args(annotation)
    if origin is Annotated:
        return _type_text(arguments[0])
    if origin is Literal:
        return " or ".join(f"`{value}`" for value in arguments)
    if origin is list:
        return f"list of {_type_text(arguments[0])}"
    if arguments and origin in (Union, UnionType):
        return " or ".join(_type_text(argument) for argument in arguments)
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type):
        if issubclass(annotation, SecretUrl):
            return "URL (secret)"
        if issubclass(annotation, SecretStr):
            return "text (secret)"
        if issubclass(annotation, BaseModel):
            return f"mapping ({annotation.__name__})"
        if annotation in _SCALAR_NAMES:
            return _SCALAR_NAMES[annotation]
    return str(getattr(annotation, "__name__", annotation))


def _default_text(model: type[BaseModel], name: str) -> str:
    field = model.model_fields[name]
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        return "see below" if name == "failover" else "empty"
    value = mask_value(field.default)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def _reference_fields(model: type[BaseModel], hidden: Sequence[str] = ()) -> list[str]:
    lines = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    for name, field in model.model_fields.items():
        if name in hidden:
            continue
        description = (field.description or "").replace("|", "\\|").replace("\n", " ")
        kind = _type_text(field.annotation)
        lines.append(f"| `{name}` | {kind} | {_default_text(model, name)} | {description} |")
    return lines


def reference_markdown(registry: VendorRegistry | None = None) -> str:
    """The configuration reference, rendered from the models (``docs/configuration.md``).

    With ``registry``, each registered vendor's own keys are listed too.
    """
    out = [
        "# Configuration reference",
        "",
        "Generated from the models in `gocomm.config`. A configuration is a YAML file "
        "(`gocomm --config FILE` or `$GOCOMM_CONFIG`); `${VAR}` and `${VAR:default}` are "
        "replaced from the environment. Each key can also be set through the environment as "
        "`GOCOMM_<SECTION>__<KEY>` (e.g. `GOCOMM_SMS__RETRY__MAX_ATTEMPTS=5`); a list or a "
        'mapping is given whole as JSON (e.g. `GOCOMM_SMS__VENDORS=\'[{"plugin": '
        '"console"}]\'`). The environment wins over the file. `GOCOMM_CONFIG`, '
        "`GOCOMM_DISABLE_PLUGINS` and `GOCOMM_TEST_REDIS_URL` are reserved; any other unknown "
        "`GOCOMM_` variable is an error.",
        "",
        f"The channels are {', '.join(f'`{c}`' for c in CHANNELS)}; each has the keys of "
        "`<channel>` below. With no file and no `GOCOMM_` variable, the embedded default "
        "applies:",
        "",
        "```yaml",
        default_settings_text().rstrip(),
        "```",
        "",
    ]
    for path, model in REFERENCE_SECTIONS:
        doc = (model.__doc__ or "").strip().splitlines()[0]
        out += [f"## `{path}`", "", doc, ""]
        out += _reference_fields(model, hidden=("options", "settings"))
        out.append("")
    if registry is not None:
        out += ["## Vendor keys", ""]
        for name in registry.names():
            spec = registry.get(name)
            channels = ", ".join(sorted(spec.channels))
            out += [f"### `plugin: {name}` ({channels})", "", spec.description or "", ""]
            if spec.settings.model_fields:
                out += _reference_fields(spec.settings)
            else:
                out.append("No keys.")
            out.append("")
    return "\n".join(out).rstrip() + "\n"
