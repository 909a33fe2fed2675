"""A stand-in for Grafana's HTTP API, for tests: the documented endpoints a dashboard push uses.

It answers ``GET /api/health``, the folder API (``GET /api/folders``, ``GET /api/folders/:uid``,
``POST /api/folders``), the data source API (``GET /api/datasources/uid/:uid``,
``GET /api/datasources/name/:name``, ``POST /api/datasources``) and the dashboard API
(``GET /api/dashboards/uid/:uid``, ``POST /api/dashboards/db``) with the status codes and
bodies of Grafana's HTTP API reference, keeping everything in memory. Like Grafana, a save
sets the dashboard's ``id`` and ``version`` and keeps the rest of the model as sent.

It also checks every request as Grafana's documentation describes it, and records what a
real Grafana would refuse or misread in ``violations`` (tests assert it stays empty): an
undocumented method or path, an Authorization header that is neither ``Bearer <token>`` nor
basic auth, a body that is not a JSON object, payloads missing required keys or carrying
unknown ones, a dashboard without uid or title, a stale numeric dashboard id, a dashboard
saved into a folder that does not exist. Credentials are checked like Grafana's: a wrong or
missing one is answered ``401 {"message": "Unauthorized"}``, and a role without the
permission an endpoint needs ``403`` (Editors may not read or create data sources).
"""

from __future__ import annotations

import base64
import copy
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote

from tests.fake_http import Answer, FakeHTTPService

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
UID = re.compile(r"[A-Za-z0-9_-]{1,40}")
NOW = "2026-01-01T00:00:00Z"

# The basic roles' permissions among those the endpoints below need (Grafana's defaults).
ROLE_PERMISSIONS = {
    "Admin": {"folders:read", "folders:create", "dashboards:read", "dashboards:create", "dashboards:write",
              "datasources:read", "datasources:create"},
    "Editor": {"folders:read", "folders:create", "dashboards:read", "dashboards:create", "dashboards:write"},
    "Viewer": {"folders:read", "dashboards:read"},
}

FOLDER_KEYS = {"uid", "title", "parentUid", "description"}
DATASOURCE_KEYS = {"uid", "name", "type", "url", "access", "basicAuth", "basicAuthUser", "withCredentials",
                   "isDefault", "jsonData", "secureJsonData", "database", "user"}
DASHBOARD_SAVE_KEYS = {"dashboard", "folderUid", "folderId", "message", "overwrite"}


@dataclass
class Stored:
    model: dict[str, Any]
    folder_uid: str
    provisioned: bool = False


@dataclass
class FakeGrafana(FakeHTTPService):
    """Grafana's HTTP API in memory; ``tokens`` and ``users`` map credentials to a basic role."""

    tokens: Mapping[str, str] = field(default_factory=lambda: {"admin-token": "Admin"})
    users: Mapping[tuple[str, str], str] = field(default_factory=dict)
    version: str = "11.3.0"
    folders: dict[str, dict[str, Any]] = field(default_factory=dict)
    datasources: dict[str, dict[str, Any]] = field(default_factory=dict)
    dashboards: dict[str, Stored] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    url: str = ""
    _next_id: int = 1
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- what tests read and seed ------------------------------------------------------

    def writes(self) -> list[tuple[str, str]]:
        return [(method, path) for method, path in self.requests if method in WRITE_METHODS]

    def dashboard(self, uid: str) -> dict[str, Any]:
        return self.dashboards[uid].model

    def add_folder(self, uid: str, title: str) -> None:
        self.folders[uid] = {"id": self._new_id(), "uid": uid, "title": title}

    def add_datasource(self, uid: str, name: str, url: str, type_: str = "prometheus") -> None:
        self.datasources[uid] = {"id": self._new_id(), "uid": uid, "orgId": 1, "name": name, "type": type_,
                                 "access": "proxy", "url": url, "basicAuth": False, "isDefault": False,
                                 "jsonData": {}, "readOnly": False, "version": 1}

    def add_dashboard(self, model: dict[str, Any], folder_uid: str, provisioned: bool = False) -> None:
        stored = {**copy.deepcopy(model), "id": self._new_id(), "version": 1}
        self.dashboards[model["uid"]] = Stored(stored, folder_uid, provisioned)

    # -- serving ---------------------------------------------------------------------

    def _route(self, request: BaseHTTPRequestHandler, path: str, raw: bytes) -> Any:
        method = request.command
        if (method, path) == ("GET", "/api/health"):  # public, like Grafana's
            return {"commit": "0000000", "database": "ok", "version": self.version}
        role = self._role(request.headers.get("Authorization"))
        routes: list[tuple[str, str, Callable[..., Any]]] = [
            ("GET", r"/api/folders", self._list_folders),
            ("GET", r"/api/folders/(?P<uid>[^/]+)", self._get_folder),
            ("POST", r"/api/folders", self._create_folder),
            ("GET", r"/api/datasources/uid/(?P<uid>[^/]+)", self._get_datasource_by_uid),
            ("GET", r"/api/datasources/name/(?P<name>[^/]+)", self._get_datasource_by_name),
            ("POST", r"/api/datasources", self._create_datasource),
            ("GET", r"/api/dashboards/uid/(?P<uid>[^/]+)", self._get_dashboard),
            ("POST", r"/api/dashboards/db", self._save_dashboard),
        ]
        for route_method, pattern, handler in routes:
            match = re.fullmatch(pattern, path)
            if match and route_method == method:
                arguments: dict[str, Any] = {key: unquote(value) for key, value in match.groupdict().items()}
                if method == "POST":
                    arguments["payload"] = self._payload(request, raw)
                return handler(role, **arguments)
        self.violations.append(f"{method} {path}: not an endpoint of Grafana's documented HTTP API")
        raise Answer(404, {"message": "Not found"})

    def _role(self, header: str | None) -> str:
        if header is None:
            raise Answer(401, {"message": "Unauthorized"})
        scheme, _, credential = header.partition(" ")
        if scheme == "Bearer" and credential and credential == credential.strip():
            if credential in self.tokens:
                return self.tokens[credential]
        elif scheme == "Basic" and credential:
            try:
                user, _, password = base64.b64decode(credential, validate=True).decode().partition(":")
            except ValueError:
                self.violations.append(f"Authorization: Basic with a credential that is not base64: {header!r}")
            else:
                if (user, password) in self.users:
                    return self.users[user, password]
        else:
            self.violations.append(f"Authorization header is neither 'Bearer <token>' nor basic auth: {header!r}")
        raise Answer(401, {"message": "Unauthorized"})

    def _payload(self, request: BaseHTTPRequestHandler, raw: bytes) -> dict[str, Any]:
        return self._json_object(request, raw, ("application/json",), Answer(400, {"message": "bad request data"}))

    def _require(self, where: str, payload: Mapping[str, Any], required: set[str], allowed: set[str]) -> None:
        missing = sorted(required - payload.keys())
        unknown = sorted(payload.keys() - allowed)
        if missing or unknown:
            self.violations.append(f"{where}: missing {missing}, unknown {unknown}")
            raise Answer(400, {"message": "bad request data"})

    @staticmethod
    def _permit(role: str, permission: str) -> None:
        if permission not in ROLE_PERMISSIONS.get(role, set()):
            raise Answer(403, {"accessErrorId": "ACE0000000001", "title": "Access denied",
                               "message": "You'll need additional permissions to perform this action. "
                                          f"Permissions needed: {permission}"})

    def _new_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    # -- folders ----------------------------------------------------------------------

    def _list_folders(self, role: str) -> list[dict[str, Any]]:
        self._permit(role, "folders:read")
        return [{"id": folder["id"], "uid": folder["uid"], "title": folder["title"]}
                for folder in self.folders.values()]

    def _folder_answer(self, folder: dict[str, Any]) -> dict[str, Any]:
        return {**folder, "url": f"/dashboards/f/{folder['uid']}/{_slug(folder['title'])}", "hasAcl": False,
                "canSave": True, "canEdit": True, "canAdmin": True, "createdBy": "admin", "created": NOW,
                "updatedBy": "admin", "updated": NOW, "version": 1}

    def _get_folder(self, role: str, uid: str) -> dict[str, Any]:
        self._permit(role, "folders:read")
        if uid not in self.folders:
            raise Answer(404, {"message": "folder not found", "status": "not-found"})
        return self._folder_answer(self.folders[uid])

    def _create_folder(self, role: str, payload: dict[str, Any]) -> dict[str, Any]:
        self._permit(role, "folders:create")
        # Grafana makes up a uid when none is given; a push must give one, or reruns would not find it.
        self._require("POST /api/folders", payload, {"title", "uid"}, FOLDER_KEYS)
        uid, title = payload["uid"], payload["title"]
        if not isinstance(title, str) or not title.strip() or not isinstance(uid, str) or not UID.fullmatch(uid):
            self.violations.append(f"POST /api/folders: invalid title {title!r} or uid {uid!r}")
            raise Answer(400, {"message": "invalid folder"})
        if uid in self.folders or any(folder["title"] == title for folder in self.folders.values()):
            raise Answer(412, {"message": "a folder with the same name or uid already exists"})
        self.add_folder(uid, title)
        return self._folder_answer(self.folders[uid])

    # -- data sources -----------------------------------------------------------------

    def _get_datasource_by_uid(self, role: str, uid: str) -> dict[str, Any]:
        self._permit(role, "datasources:read")
        if uid not in self.datasources:
            raise Answer(404, {"message": "Data source not found"})
        return self.datasources[uid]

    def _get_datasource_by_name(self, role: str, name: str) -> dict[str, Any]:
        self._permit(role, "datasources:read")
        for datasource in self.datasources.values():
            if datasource["name"] == name:
                return datasource
        raise Answer(404, {"message": "Data source not found"})

    def _create_datasource(self, role: str, payload: dict[str, Any]) -> dict[str, Any]:
        self._permit(role, "datasources:create")
        self._require("POST /api/datasources", payload, {"name", "type", "url", "access"}, DATASOURCE_KEYS)
        if payload["access"] not in ("proxy", "direct") or not all(
                isinstance(payload[key], str) and payload[key] for key in ("name", "type", "url")):
            self.violations.append(f"POST /api/datasources: invalid name, type, url or access in {payload}")
            raise Answer(400, {"message": "invalid data source"})
        if any(datasource["name"] == payload["name"] for datasource in self.datasources.values()):
            raise Answer(409, {"message": "data source with the same name already exists"})
        uid = payload.get("uid") or f"generated{self._next_id}"
        if uid in self.datasources:
            raise Answer(409, {"message": "data source with the same uid already exists"})
        self.add_datasource(uid, payload["name"], payload["url"], payload["type"])
        self.datasources[uid].update({key: payload[key] for key in payload.keys() - {"secureJsonData"}})
        stored = self.datasources[uid]
        return {"datasource": stored, "id": stored["id"], "message": "Datasource added", "name": stored["name"]}

    # -- dashboards -------------------------------------------------------------------

    def _get_dashboard(self, role: str, uid: str) -> dict[str, Any]:
        self._permit(role, "dashboards:read")
        if uid not in self.dashboards:
            raise Answer(404, {"message": "Dashboard not found"})
        stored = self.dashboards[uid]
        folder = self.folders.get(stored.folder_uid, {"id": 0, "uid": "", "title": "Dashboards"})
        slug = _slug(stored.model["title"])
        meta = {"type": "db", "canSave": True, "canEdit": True, "canAdmin": True, "canStar": True,
                "canDelete": True, "slug": slug, "url": f"/d/{uid}/{slug}", "expires": "0001-01-01T00:00:00Z",
                "created": NOW, "updated": NOW, "updatedBy": "admin", "createdBy": "admin",
                "version": stored.model["version"], "hasAcl": False, "isFolder": False, "folderId": folder["id"],
                "folderUid": folder["uid"], "folderTitle": folder["title"],
                "folderUrl": f"/dashboards/f/{folder['uid']}/{_slug(folder['title'])}" if folder["uid"] else "",
                "provisioned": stored.provisioned, "provisionedExternalId": "", "isStarred": False}
        return {"dashboard": copy.deepcopy(stored.model), "meta": meta}

    def _save_dashboard(self, role: str, payload: dict[str, Any]) -> dict[str, Any]:
        where = "POST /api/dashboards/db"
        self._require(where, payload, {"dashboard", "folderUid", "overwrite"}, DASHBOARD_SAVE_KEYS)
        model, folder_uid, overwrite = payload["dashboard"], payload["folderUid"], payload["overwrite"]
        if "folderId" in payload:
            self.violations.append(f"{where}: folderId (deprecated) besides folderUid")
        if not isinstance(model, dict) or not isinstance(overwrite, bool) or not isinstance(folder_uid, str):
            self.violations.append(f"{where}: dashboard, overwrite or folderUid of the wrong type")
            raise Answer(400, {"message": "bad request data"})
        uid, title = model.get("uid"), model.get("title")
        if not isinstance(uid, str) or not UID.fullmatch(uid) or not isinstance(title, str) or not title.strip():
            self.violations.append(f"{where}: dashboard.uid {uid!r} or dashboard.title {title!r} invalid")
            raise Answer(400, {"message": "Dashboard title cannot be empty" if not title else "invalid uid"})
        existing = self.dashboards.get(uid)
        self._permit(role, "dashboards:write" if existing else "dashboards:create")
        if model.get("id") is not None and (existing is None or model["id"] != existing.model["id"]):
            self.violations.append(f"{where}: dashboard.id {model['id']!r} names no dashboard with uid {uid}")
            raise Answer(404, {"message": "Dashboard not found"})
        if folder_uid not in self.folders:
            self.violations.append(f"{where}: folderUid {folder_uid!r} names no folder")
            raise Answer(400, {"message": "folder not found"})
        if existing is not None and existing.provisioned:
            raise Answer(400, {"message": "Cannot save provisioned dashboard"})
        if existing is not None and not overwrite and model.get("version") != existing.model["version"]:
            raise Answer(412, {"message": "The dashboard has been changed by someone else",
                               "status": "version-mismatch"})
        for other_uid, other in self.dashboards.items():
            if other_uid != uid and other.folder_uid == folder_uid and other.model["title"] == title:
                raise Answer(412, {"message": "A dashboard with the same name in the folder already exists",
                                   "status": "name-exists"})
        version = existing.model["version"] + 1 if existing else 1
        dashboard_id = existing.model["id"] if existing else self._new_id()
        self.dashboards[uid] = Stored({**copy.deepcopy(model), "id": dashboard_id, "version": version}, folder_uid)
        slug = _slug(title)
        return {"id": dashboard_id, "uid": uid, "url": f"/d/{uid}/{slug}", "status": "success", "version": version,
                "slug": slug}


def _slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
