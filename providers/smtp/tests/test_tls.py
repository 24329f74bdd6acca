"""TLS: STARTTLS required, implicit TLS, verified certificates, nothing over plaintext."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from gocomm_smtp import SmtpSender

from gocomm.errors import ConfigError, PermanentError, is_retryable
from gocomm.messages import Email

from .conftest import PASSWORD, USERNAME, Certs, SmtpTestServer, make_settings

ServerFactory = Callable[..., SmtpTestServer]
EMAIL = Email(subject="Hello", text="Hello over TLS")


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
async def test_tls_delivery_with_auth(smtp_server: ServerFactory, certs: Certs, tls: str) -> None:
    # aiosmtpd only counts STARTTLS as TLS for auth_require_tls; with implicit TLS the client's
    # own check of the transport below proves the encryption.
    server = smtp_server(tls=tls, certs=certs, auth=True, auth_require_tls=tls == "starttls")
    settings = make_settings(
        server, tls=tls, ca_file=certs.ca_file, username=USERNAME, password=PASSWORD
    )
    async with SmtpSender(settings) as sender:
        receipt = await sender.send("b", EMAIL, "alice@example.com")
        [conn] = sender.pool.connections
        assert conn.smtp.get_transport_info("sslcontext") is not None
    assert [(login, pw) for _, login, pw in server.recorder.auth] == [(USERNAME, PASSWORD)]
    [received] = server.recorder.messages
    assert received.message["Message-ID"] == receipt.message_ids[0]


async def test_starttls_required_but_not_offered(smtp_server: ServerFactory) -> None:
    # A plaintext server that would even accept AUTH without TLS: we must not use it.
    server = smtp_server(auth=True, auth_require_tls=False)
    settings = make_settings(server, tls="starttls", username=USERNAME, password=PASSWORD)
    async with SmtpSender(settings) as sender:
        with pytest.raises(PermanentError, match="STARTTLS") as caught:
            await sender.send("b", EMAIL, "alice@example.com")
    assert not is_retryable(caught.value)
    assert server.recorder.sessions_made == 1  # it did connect and look...
    assert server.recorder.auth == []  # ...but never authenticated
    assert server.recorder.mail_commands == 0  # ...and never sent
    assert server.recorder.messages == []


@pytest.mark.parametrize("tls", ["starttls", "implicit"])
async def test_untrusted_certificate_is_permanent(
    smtp_server: ServerFactory, certs: Certs, other_certs: Certs, tls: str
) -> None:
    # The server's certificate comes from a CA the client does not trust.
    server = smtp_server(tls=tls, certs=other_certs, auth=True)
    settings = make_settings(
        server, tls=tls, ca_file=certs.ca_file, username=USERNAME, password=PASSWORD
    )
    async with SmtpSender(settings) as sender:
        with pytest.raises(PermanentError, match=r"TLS failed.*certificate") as caught:
            await sender.send("b", EMAIL, "alice@example.com")
    assert not is_retryable(caught.value)
    assert server.recorder.auth == [] and server.recorder.messages == []


async def test_certificate_for_another_host_is_refused(
    smtp_server: ServerFactory, localhost_certs: Certs
) -> None:
    # A trusted CA, but the certificate names localhost and we connect to 127.0.0.1.
    server = smtp_server(tls="implicit", certs=localhost_certs)
    settings = make_settings(server, tls="implicit", ca_file=localhost_certs.ca_file)
    async with SmtpSender(settings) as sender:
        with pytest.raises(PermanentError, match=r"TLS failed.*(host|IP address) mismatch"):
            await sender.send("b", EMAIL, "a@example.com")
    assert server.recorder.messages == []


async def test_system_trust_store_alone_does_not_trust_a_private_ca(
    smtp_server: ServerFactory, certs: Certs
) -> None:
    server = smtp_server(tls="starttls", certs=certs)
    async with SmtpSender(make_settings(server, tls="starttls")) as sender:
        with pytest.raises(PermanentError, match="TLS"):
            await sender.send("b", EMAIL, "a@example.com")
    assert server.recorder.messages == []


async def test_unreadable_ca_file_is_a_config_error(
    smtp_server: ServerFactory, tmp_path: object
) -> None:
    from pathlib import Path

    assert isinstance(tmp_path, Path)
    bad = tmp_path / "not-a-cert.pem"
    bad.write_text("this is not PEM\n")
    server = smtp_server()
    async with SmtpSender(make_settings(server, tls="starttls", ca_file=bad)) as sender:
        with pytest.raises(ConfigError, match="ca_file"):
            await sender.send("b", EMAIL, "a@example.com")
    assert server.recorder.sessions_made == 0


async def test_implicit_tls_on_a_starttls_port_says_the_port_and_mode_do_not_match(
    smtp_server: ServerFactory, certs: Certs
) -> None:
    # A STARTTLS (or plaintext) port greets in plaintext: the TLS handshake reads the greeting.
    server = smtp_server(tls="starttls", certs=certs)
    settings = make_settings(server, tls="implicit", ca_file=certs.ca_file)
    async with SmtpSender(settings) as sender:
        with pytest.raises(PermanentError) as caught:
            await sender.send("b", EMAIL, "alice@example.com")
    message = str(caught.value)
    assert "do not match" in message and "587" in message and "465" in message, message
    assert "certificate" not in message
    assert not is_retryable(caught.value)
    assert server.recorder.messages == []
