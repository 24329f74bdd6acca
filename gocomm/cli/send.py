"""``gocomm send sms`` and ``gocomm send email``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    pass

from gocomm.cli.app import (
    UsageError,
    _options,
    _run,
    _send_and_print,
    send_app,
)

# -- send ------------------------------------------------------------------------------------

ToOption = Annotated[
    list[str], typer.Option("--to", help="Recipient; repeat the option for several.")
]


@send_app.command("sms")
def send_sms(
    ctx: typer.Context,
    to: ToOption,
    biz: Annotated[str, typer.Option(help="The template's logical name (mapped per vendor).")],
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="Template parameter NAME=VALUE; repeatable."),
    ] = None,
) -> None:
    """Send one SMS: gocomm send sms --to +8613800138000 --biz login --param code=1234"""
    from gocomm.recipients import validate_phone

    options = _options(ctx)

    def command() -> int:
        numbers = tuple(validate_phone(number) for number in to)
        return _send_and_print(options, "sms", biz, _params(param or []), numbers)

    _run(options, command)


def _params(pairs: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        name, equals, value = pair.partition("=")
        if not equals or not name.strip():
            raise UsageError(f"--param {pair!r} is not NAME=VALUE (e.g. --param code=1234)")
        params[name.strip()] = value
    return params


@send_app.command("email")
def send_email(
    ctx: typer.Context,
    to: ToOption,
    subject: Annotated[str, typer.Option(help="The subject line.")],
    text: Annotated[str | None, typer.Option(help="The plain-text body.")] = None,
    html: Annotated[str | None, typer.Option(help="The HTML body.")] = None,
    cc: Annotated[list[str] | None, typer.Option(help="Cc address; repeatable.")] = None,
    bcc: Annotated[list[str] | None, typer.Option(help="Bcc address; repeatable.")] = None,
    sender: Annotated[
        str | None, typer.Option("--from", help="The From address (default: the vendor's).")
    ] = None,
    biz: Annotated[
        str, typer.Option(help="Template id for HTTP email vendors; SMTP ignores it.")
    ] = "email",
) -> None:
    """Send one email: gocomm send email --to a@example.com --subject Hi --text Hello"""
    from gocomm.messages import Email
    from gocomm.recipients import validate_email

    options = _options(ctx)

    def command() -> int:
        addresses = tuple(validate_email(a) for a in to)
        message = Email(
            subject=subject,
            text=text,
            html=html,
            sender=validate_email(sender) if sender else None,
            cc=tuple(validate_email(a) for a in cc or ()),
            bcc=tuple(validate_email(a) for a in bcc or ()),
        )
        return _send_and_print(options, "email", biz, message, addresses)

    _run(options, command)
