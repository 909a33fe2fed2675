"""A stand-in for Confluent Schema Registry's REST API, for tests: the endpoints ``corridor schemas register`` uses.

It answers ``POST /subjects/{subject}/versions`` (register a schema: ``{"id": n}``, the same id
again for a schema the registry already holds, as the real one does) and ``PUT /config/{subject}``
(set a subject's compatibility level) with the status codes and error bodies of Confluent's API
reference (``{"error_code", "message"}``), keeping everything in memory.

It checks every request as the reference describes it and records in ``violations`` what the
real registry would refuse or misread (tests assert it stays empty): another method or path, a
Content-Type that is not the registry's or JSON, a body that is not a JSON object or carries
unknown keys, a ``schemaType`` other than JSON, a ``schema`` that is not a string holding a JSON
document, an unknown compatibility level. With ``users`` set, requests without one of those basic
auth credentials are answered 401; subjects in ``incompatible`` answer a registration 409.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote

from tests import fake_http

CONTENT_TYPES = ("application/vnd.schemaregistry.v1+json", "application/vnd.schemaregistry+json", "application/json")
REGISTER_KEYS = {"schema", "schemaType", "references", "metadata", "ruleSet"}
LEVELS = {"BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE", "NONE"}


class Answer(fake_http.Answer):
    """An error as the registry answers it: ``{"error_code", "message"}``."""

    def __init__(self, status: int, error_code: int, message: str) -> None:
        super().__init__(status, {"error_code": error_code, "message": message})


@dataclass
class FakeSchemaRegistry(fake_http.FakeHTTPService):
    """Schema Registry in memory: ``schemas`` maps each subject to its versions' schema texts."""

    users: set[tuple[str, str]] = field(default_factory=set)
    incompatible: set[str] = field(default_factory=set)
    schemas: dict[str, list[str]] = field(default_factory=dict)
    compatibility: dict[str, str] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    url: str = ""
    _ids: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    content_type = CONTENT_TYPES[0]

    def id_of(self, schema: str) -> int:
        return self._ids[schema]

    def _route(self, request: BaseHTTPRequestHandler, path: str, raw: bytes) -> Any:
        self._authorize(request.headers.get("Authorization"))
        register = re.fullmatch(r"/subjects/(?P<subject>[^/]+)/versions", path)
        config = re.fullmatch(r"/config/(?P<subject>[^/]+)", path)
        if register and request.command == "POST":
            return self._register(unquote(register["subject"]), self._payload(request, raw))
        if config and request.command == "PUT":
            return self._configure(unquote(config["subject"]), self._payload(request, raw))
        self.violations.append(f"{request.command} {path}: not an endpoint this stand-in serves")
        raise Answer(404, 404, "HTTP 404 Not Found")

    def _authorize(self, header: str | None) -> None:
        if not self.users:
            return
        scheme, _, credential = (header or "").partition(" ")
        if scheme == "Basic":
            user, _, password = base64.b64decode(credential).decode().partition(":")
            if (user, password) in self.users:
                return
        raise Answer(401, 40101, "Unauthorized")

    def _payload(self, request: BaseHTTPRequestHandler, raw: bytes) -> dict[str, Any]:
        return self._json_object(request, raw, CONTENT_TYPES, Answer(400, 400, "Bad Request"))

    def _register(self, subject: str, payload: dict[str, Any]) -> dict[str, int]:
        if set(payload) - REGISTER_KEYS:
            self.violations.append(f"register {subject}: unknown keys {sorted(set(payload) - REGISTER_KEYS)}")
        if payload.get("schemaType") != "JSON":
            self.violations.append(f"register {subject}: schemaType {payload.get('schemaType')!r}, not JSON")
        schema = payload.get("schema")
        try:
            document = json.loads(schema) if isinstance(schema, str) else None
        except ValueError:
            document = None
        if not isinstance(document, dict):
            self.violations.append(f"register {subject}: schema is not a string holding a JSON Schema document")
            raise Answer(422, 42201, "Invalid schema")
        if subject in self.incompatible:
            raise Answer(409, 409, f"Schema being registered is incompatible with an earlier schema for subject "
                                   f'"{subject}", details: [{{errorType:"PROPERTY_REMOVED"}}]')
        versions = self.schemas.setdefault(subject, [])
        if schema not in versions:
            versions.append(schema)
        return {"id": self._ids.setdefault(schema, len(self._ids) + 1)}

    def _configure(self, subject: str, payload: dict[str, Any]) -> dict[str, str]:
        level = payload.get("compatibility")
        if set(payload) != {"compatibility"} or level not in LEVELS:
            self.violations.append(f"config {subject}: {payload!r} is not a compatibility level")
            raise Answer(422, 42203, "Invalid compatibility level")
        self.compatibility[subject] = level
        return {"compatibility": level}
