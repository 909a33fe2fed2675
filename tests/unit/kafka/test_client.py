"""aiokafka client options from the settings; the settings themselves need no aiokafka."""

from __future__ import annotations

import ssl
import subprocess
import sys
from pathlib import Path

from pydantic import SecretStr

from streams.kafka.client import client_options
from streams.settings import Settings

ROOT = Path(__file__).resolve().parents[3]


def test_plaintext_options_name_the_bootstrap_servers() -> None:
    assert client_options(Settings(kafka_bootstrap="a:1,b:2")) == {
        "bootstrap_servers": "a:1,b:2",
        "security_protocol": "PLAINTEXT",
    }
    assert client_options(Settings(kafka_bootstrap=None, broker_port=9999))["bootstrap_servers"] == "127.0.0.1:9999"


def test_sasl_ssl_options_carry_the_credentials_and_a_tls_context() -> None:
    settings = Settings(
        kafka_bootstrap="a:1",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="user",
        kafka_sasl_password=SecretStr("secret"),
    )
    options = client_options(settings)
    assert options["sasl_mechanism"] == "SCRAM-SHA-256"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("user", "secret")
    assert isinstance(options["ssl_context"], ssl.SSLContext)


def test_the_settings_module_imports_no_aiokafka() -> None:
    check = "import sys, streams.settings; print(sorted(m for m in sys.modules if m.split('.')[0] == 'aiokafka'))"
    run = subprocess.run([sys.executable, "-c", check], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
