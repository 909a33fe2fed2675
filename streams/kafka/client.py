"""Keyword arguments for aiokafka clients, built from the settings."""

from __future__ import annotations

from ssl import SSLContext

from aiokafka.helpers import create_ssl_context

from streams.settings import Settings


def client_options(settings: Settings) -> dict[str, object]:
    """Keyword arguments shared by every aiokafka client: bootstrap servers, security, SASL and TLS."""
    options: dict[str, object] = {
        "bootstrap_servers": settings.bootstrap,
        "security_protocol": settings.kafka_security_protocol,
    }
    if settings.kafka_sasl_mechanism:
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        if settings.kafka_sasl_password is not None:
            options["sasl_plain_password"] = settings.kafka_sasl_password.get_secret_value()
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    return options


def ssl_context(settings: Settings) -> SSLContext | None:
    """The TLS context of SSL and SASL_SSL connections; None for plaintext ones."""
    if settings.kafka_security_protocol not in ("SSL", "SASL_SSL"):
        return None
    return create_ssl_context(
        cafile=settings.kafka_ssl_cafile,
        certfile=settings.kafka_ssl_certfile,
        keyfile=settings.kafka_ssl_keyfile,
    )


__all__ = ["client_options", "ssl_context"]
