"""The settings users write for the ``smtp`` vendor (DESIGN §6)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, FilePath, SecretStr, field_validator, model_validator

from gocomm.errors import CommError
from gocomm.mime import parse_address
from gocomm.plugins import VendorSettings

__all__ = ["DEFAULT_PORTS", "SmtpSettings", "TlsMode"]

TlsMode = Literal["starttls", "implicit", "none"]

#: The port each TLS mode uses when ``port`` is not given (RFC 8314 / RFC 6409 / RFC 5321).
DEFAULT_PORTS: dict[str, int] = {"starttls": 587, "implicit": 465, "none": 25}


class SmtpSettings(VendorSettings):
    """Where and how to reach the SMTP server, and how to pool connections to it.

    ``tls`` is ``"starttls"`` (the default, and then required: a server that does not offer it
    is refused), ``"implicit"`` (TLS from the first byte) or ``"none"`` (plaintext, only when
    asked for). Certificates are always verified; ``ca_file`` adds a trust root.
    """

    host: str = Field(min_length=1, description="SMTP server host name or IP address")
    port: int = Field(
        ge=1, le=65535, description="default 587 with starttls, 465 implicit, 25 none"
    )
    username: str | None = Field(default=None, min_length=1)
    password: SecretStr | None = None
    tls: TlsMode = "starttls"
    ca_file: FilePath | None = Field(default=None, description="extra trusted CA (PEM)")
    timeout: float = Field(default=30.0, gt=0, description="seconds per SMTP command")
    pool_size: int = Field(default=4, ge=1, description="most connections open at once")
    idle_timeout: float = Field(default=30.0, gt=0, description="close a connection idle this long")
    max_messages: int = Field(default=100, ge=1, description="messages per connection")
    max_refusals: int = Field(
        default=5,
        ge=1,
        description="transactions with a refused recipient or command before a new connection",
    )
    sender: str | None = Field(default=None, description="From address when the Email has none")

    @model_validator(mode="before")
    @classmethod
    def _default_port(cls, data: Any) -> Any:
        # The port follows the TLS mode unless given, so it is filled before field validation.
        if isinstance(data, dict) and data.get("port") is None:
            tls = data.get("tls", "starttls")
            if isinstance(tls, str) and tls in DEFAULT_PORTS:
                return {**data, "port": DEFAULT_PORTS[tls]}
        return data

    @field_validator("host")
    @classmethod
    def _check_host(cls, host: str) -> str:
        if host != host.strip() or any(c.isspace() or ord(c) < 32 for c in host):
            raise ValueError("host must be a bare host name or IP address, without spaces")
        return host

    @field_validator("sender")
    @classmethod
    def _check_sender(cls, sender: str | None) -> str | None:
        if sender is not None:
            try:
                parse_address(sender, "sender")
            except CommError as exc:
                raise ValueError(str(exc)) from None
        return sender

    @model_validator(mode="after")
    def _check_combinations(self) -> SmtpSettings:
        if (self.username is None) != (self.password is None):
            raise ValueError("set both username and password for AUTH, or neither")
        if self.ca_file is not None and self.tls == "none":
            raise ValueError(
                "ca_file needs tls 'starttls' or 'implicit'; with tls 'none' it is unused"
            )
        return self
