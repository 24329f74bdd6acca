"""SMS templates: a logical ``biz`` mapped to each vendor's template id and parameter order.

This is what lets one ``biz`` fail over between vendors (DESIGN §6): each vendor's
``templates`` maps it to its own id, and where the vendor takes ordered parameters (Tencent
Cloud) to their order. Without an entry, ``biz`` is the vendor's template id.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from gocomm.errors import InvalidMessage
from gocomm.messages import check_encodable, sms_params

__all__ = ["ResolvedTemplate", "SmsTemplate", "TemplateEntry", "resolve_template"]


class SmsTemplate(BaseModel):
    """A ``templates`` entry naming the vendor's template id and the order of its parameters.

    ``params`` lists the names of ``args`` in the order the vendor's template takes them
    (Tencent Cloud numbers its parameters ``{1}``, ``{2}`` ...). ``None`` means the order of
    ``args`` itself.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    params: tuple[str, ...] | None = None


#: A ``templates`` value: the vendor's template id, or ``{id, params}``.
TemplateEntry = str | SmsTemplate


@dataclass(frozen=True, slots=True)
class ResolvedTemplate:
    """What one send uses: the vendor's template ``id``, the named ``args`` and ``values``, the
    parameter values in the vendor's order."""

    id: str
    args: Mapping[str, str]
    values: tuple[str, ...]


def resolve_template(
    templates: Mapping[str, TemplateEntry], biz: str, args: object
) -> ResolvedTemplate:
    """Map the logical ``biz`` to the vendor's template and ``args`` to ordered values.

    An entry that is a plain id takes the parameters in the order of ``args``; an
    :class:`SmsTemplate` with ``params`` takes them in that order (extra ``args`` are ignored, so
    one ``args`` serves several vendors); without an entry ``biz`` is the vendor's template id.
    Raises :class:`~gocomm.errors.InvalidMessage` for args that are not ``str`` to ``str``, or
    for a parameter ``params`` names but ``args`` lacks.
    """
    if not isinstance(biz, str) or not biz:
        raise InvalidMessage(f"biz must be a non-empty str naming a template, got {biz!r}")
    check_encodable("biz", biz)
    named = sms_params(args, where=f"SMS args for biz {biz!r}")
    entry = templates.get(biz, biz)
    if isinstance(entry, str):
        return ResolvedTemplate(entry, named, tuple(named.values()))
    if entry.params is None:
        return ResolvedTemplate(entry.id, named, tuple(named.values()))
    missing = [p for p in entry.params if p not in named]
    if missing:
        raise InvalidMessage(
            f"template for biz {biz!r} needs parameter(s) {', '.join(map(repr, missing))} "
            f"missing from args (given: {', '.join(map(repr, named)) or 'none'})"
        )
    return ResolvedTemplate(entry.id, named, tuple(named[p] for p in entry.params))
