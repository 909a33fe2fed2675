"""CORRIDOR_INGEST_TOKENS: plain and sha256 keys, family lists, "*", and errors that name the fix, not the token."""

from __future__ import annotations

import hashlib
import json

import pytest
from pydantic import SecretStr, ValidationError

from schemas.families import FAMILY_NAMES
from streams.ingest.auth import TokenTable
from streams.settings import Settings, ingest_token_digests


def digests(value: object) -> dict[str, frozenset[str]]:
    return ingest_token_digests(SecretStr(json.dumps(value)))


def sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def test_plain_keys_are_held_as_their_digest() -> None:
    assert digests({"s3cr3t-Token_1.x~y+z/=": ["shipments"]}) == {sha256("s3cr3t-Token_1.x~y+z/="): {"shipments"}}


def test_sha256_keys_are_taken_as_given_in_either_case() -> None:
    digest = sha256("token")
    assert digests({f"sha256:{digest.upper()}": ["flights", "finance"]}) == {digest: {"flights", "finance"}}


def test_a_star_grants_every_family() -> None:
    assert digests({"t": ["*"]}) == {sha256("t"): frozenset(FAMILY_NAMES)}
    assert digests({"t": ["flights", "*"]}) == {sha256("t"): frozenset(FAMILY_NAMES)}


def test_the_setting_is_read_from_the_environment_and_kept_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORRIDOR_INGEST_TOKENS", '{"plain-text-secret": ["*"]}')
    settings = Settings()
    assert settings.ingest_tokens is not None
    assert "plain-text-secret" not in repr(settings) and "plain-text-secret" not in str(settings.model_dump())


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("not json", "CORRIDOR_INGEST_TOKENS is not JSON"),
        ("[]", "expected a non-empty JSON object"),
        ("{}", "expected a non-empty JSON object"),
        ('{"a-token": "shipments"}', "key 1: expected a non-empty list of family names"),
        ('{"a-token": []}', "key 1: expected a non-empty list of family names"),
        ('{"a-token": ["ships"]}', "key 1: unknown families 'ships'"),
        ('{"ok": ["*"], "has space": ["*"]}', "key 2 is not a bearer token"),
        ('{"sha256:abc": ["*"]}', "key 1 starts with sha256: but is not followed by 64 hex digits"),
        ('{"a-token": ["*"], "a-token": ["flights"]}', "a key appears twice"),
        (json.dumps({"a-token": ["*"], f"sha256:{sha256('a-token')}": ["*"]}), "key 2 is a token already listed"),
    ],
)
def test_a_bad_value_names_the_variable_and_the_problem_but_never_the_token(value: str, problem: str) -> None:
    with pytest.raises(ValidationError) as raised:
        Settings(ingest_tokens=SecretStr(value))
    message = str(raised.value)
    assert "CORRIDOR_INGEST_TOKENS" in message
    assert problem in message
    assert "a-token" not in message and "has space" not in message


def test_the_table_finds_each_token_and_only_those() -> None:
    table = TokenTable(digests({"first": ["shipments"], f"sha256:{sha256('second')}": ["*"]}))
    first, second = table.authorize("first"), table.authorize("second")
    assert first is not None and (first.position, first.families) == (1, {"shipments"})
    assert second is not None and (second.position, second.families) == (2, frozenset(FAMILY_NAMES))
    for guess in ("", "firs", "first ", "FIRST", sha256("second"), f"sha256:{sha256('second')}"):
        assert table.authorize(guess) is None


def test_every_key_is_compared_whichever_matches(monkeypatch: pytest.MonkeyPatch) -> None:
    import streams.ingest.auth as auth

    compared: list[bytes] = []
    real = auth.hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append(b)
        return real(a, b)

    monkeypatch.setattr(auth.hmac, "compare_digest", counting)
    table = TokenTable(digests({"one": ["*"], "two": ["*"], "three": ["*"]}))
    for token in ("one", "three", "nobody"):
        compared.clear()
        table.authorize(token)
        assert len(compared) == 3
