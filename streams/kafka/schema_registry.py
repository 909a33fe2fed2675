"""Registering the families' JSON Schemas with a Confluent Schema Registry (its REST API, no client library).

Each family topic's schema, the document ``corridor schemas export`` writes, becomes the
``<topic>-value`` subject (``TopicNameStrategy``, what Confluent's serializers look up), with
``schemaType`` JSON. Registering a schema the subject already holds returns its id again, so
registering is safe to repeat.

Each subject is first set to BACKWARD compatibility (unless the caller chooses another level, or
none): the registry then refuses a later schema that could not read what producers already
wrote, e.g. one that removes a field of the closed event models or makes an optional one
required. Version 2 of the shipment contract only adds optional fields, which BACKWARD accepts
(docs/interop.md, "Shipment contract version 2").
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from schemas.export import family_schema_text
from schemas.families import FAMILIES

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
#: The compatibility levels a subject may be set to (PUT /config/<subject>).
COMPATIBILITY_LEVELS = ("BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL",
                        "FULL_TRANSITIVE", "NONE")
#: The level every subject is set to unless the caller says otherwise (also Schema Registry's own default).
DEFAULT_COMPATIBILITY = "BACKWARD"
TIMEOUT_S = 10.0


class RegistryError(Exception):
    """The registry could not be reached or refused a request; the message is one line saying why."""


@dataclass(frozen=True, slots=True)
class Registered:
    subject: str
    schema_id: int


@dataclass(frozen=True, slots=True)
class SchemaRegistry:
    """A Schema Registry at ``url``; credentials in the URL (``https://key:secret@host``) go as basic auth."""

    url: str

    def register(self, subject: str, schema: str) -> int:
        """Register ``schema`` (JSON Schema text) under ``subject``; returns its id."""
        answer = self._request("POST", f"/subjects/{_quoted(subject)}/versions",
                               {"schemaType": "JSON", "schema": schema}, subject)
        return int(answer["id"])

    def set_compatibility(self, subject: str, level: str) -> None:
        self._request("PUT", f"/config/{_quoted(subject)}", {"compatibility": level}, subject)

    def _request(self, method: str, path: str, body: dict[str, Any], subject: str) -> Any:
        base, authorization = _split_credentials(self.url)
        request = urllib.request.Request(  # noqa: S310 (the operator gives the registry's URL; http(s) only)
            base.rstrip("/") + path, data=json.dumps(body).encode(), method=method,
            headers={"Content-Type": CONTENT_TYPE, "Accept": CONTENT_TYPE}
            | ({"Authorization": authorization} if authorization else {}),
        )
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:  # noqa: S310 (scheme checked)
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            raise RegistryError(_refusal(error, base, subject)) from None
        except (urllib.error.URLError, OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise RegistryError(f"no Schema Registry answered at {base}: {reason}") from None


def register_schemas(registry: SchemaRegistry, subject_suffix: str = "-value",
                     compatibility: str | None = DEFAULT_COMPATIBILITY,
                     registered: Callable[[Registered], None] = lambda _: None) -> list[Registered]:
    """Register every family topic's schema as ``<topic><subject_suffix>``, in family order.

    Each subject's compatibility level is set to ``compatibility`` before its schema is posted, so
    the registry checks the schema against that level; None leaves the level as it is. ``registered``
    is told of each subject as it is done, so a caller can report progress before a later one fails.
    """
    done: list[Registered] = []
    for family in FAMILIES.values():
        subject = f"{family.topic}{subject_suffix}"
        if compatibility is not None:
            registry.set_compatibility(subject, compatibility)
        result = Registered(subject, registry.register(subject, family_schema_text(family.name)))
        registered(result)
        done.append(result)
    return done


def _quoted(subject: str) -> str:
    return urllib.parse.quote(subject, safe="")


def _split_credentials(url: str) -> tuple[str, str | None]:
    """The URL without its credentials, and the basic Authorization header they make (if any)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise RegistryError(f"Schema Registry URL must start with http:// or https:// (got {url!r})")
    if parts.username is None:
        return url, None
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    user = urllib.parse.unquote(parts.username)
    password = urllib.parse.unquote(parts.password or "")
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc)), f"Basic {token}"


def _refusal(error: urllib.error.HTTPError, base: str, subject: str) -> str:
    try:
        detail = json.loads(error.read() or b"{}")
        message = str(detail.get("message") or error.reason) if isinstance(detail, dict) else str(error.reason)
    except ValueError:
        message = str(error.reason)
    message = " ".join(message.split())
    if error.code in (401, 403):
        return (f"Schema Registry at {base} refused the credentials ({error.code}): "
                "give them in the URL, e.g. https://KEY:SECRET@host")
    if error.code == 409:
        return (f"{subject}: the schema is incompatible with the subject's registered versions (409: {message}); "
                "register it under a new topic version, or change the subject's compatibility")
    if error.code == 422:
        return f"{subject}: the registry rejected the schema or request (422: {message})"
    return f"{subject}: Schema Registry at {base} answered {error.code}: {message}"
