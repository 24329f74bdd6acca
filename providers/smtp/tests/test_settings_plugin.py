"""SmtpSettings validation and the plugin's registration through the entry point."""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path

import pytest
from gocomm_smtp import SmtpSettings
from gocomm_smtp.plugin import create_sender
from pydantic import ValidationError

from gocomm.testing.vendor_checks import assert_plugin_entry_point

SECRET = "s3cr3t-Value"


@pytest.mark.parametrize(("tls", "port"), [("starttls", 587), ("implicit", 465), ("none", 25)])
def test_port_follows_tls(tls: str, port: int) -> None:
    assert SmtpSettings(host="mail.example.com", tls=tls).port == port
    assert SmtpSettings(host="mail.example.com", tls=tls, port=2525).port == 2525


def test_defaults() -> None:
    settings = SmtpSettings(host="mail.example.com")
    assert (settings.tls, settings.timeout, settings.pool_size) == ("starttls", 30.0, 4)
    assert (settings.idle_timeout, settings.max_messages) == (30.0, 100)
    assert settings.username is settings.password is settings.sender is None


def test_password_is_secret() -> None:
    settings = SmtpSettings(host="mail.example.com", username="u", password=SECRET)
    assert SECRET not in repr(settings) and SECRET not in str(settings)
    assert settings.password is not None and settings.password.get_secret_value() == SECRET
    assert SECRET not in repr(create_sender(settings))


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"username": "u"}, "both username and password"),
        ({"password": SECRET}, "both username and password"),
        ({"tls": "ssl"}, "starttls"),
        ({"port": 0}, "port"),
        ({"pool_size": 0}, "pool_size"),
        ({"max_messages": 0}, "max_messages"),
        ({"idle_timeout": 0}, "idle_timeout"),
        ({"timeout": -1}, "timeout"),
        ({"sender": "not an address"}, "sender"),
        ({"ca_file": "/nonexistent/ca.pem"}, "ca_file"),
        ({"host": "mail.example.com\r\nX: y"}, "host"),
        ({"hots": "typo"}, "hots"),
    ],
)
def test_bad_settings(values: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message) as caught:
        SmtpSettings(**{"host": "mail.example.com", **values})
    assert SECRET not in str(caught.value.errors(include_input=False))


def test_ca_file_needs_tls(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    with pytest.raises(ValidationError, match="ca_file needs tls"):
        SmtpSettings(host="mail.example.com", tls="none", ca_file=ca)


def test_entry_point_registers_the_vendor() -> None:
    [entry_point] = [
        ep for ep in importlib.metadata.entry_points(group="gocomm") if ep.name == "smtp"
    ]
    assert entry_point.value == "gocomm_smtp.plugin"
    spec = assert_plugin_entry_point(
        "smtp", distribution="gocomm-smtp", channels={"email"}, settings=SmtpSettings
    )
    sender = spec.factory(SmtpSettings(host="mail.example.com"))
    assert type(sender).__name__ == "SmtpSender"


def test_plugin_import_does_not_load_aiosmtplib() -> None:
    code = (
        "import sys, gocomm_smtp.plugin, gocomm_smtp; "
        "assert 'aiosmtplib' not in sys.modules, 'imported eagerly'; "
        "gocomm_smtp.SmtpSender; assert 'aiosmtplib' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
