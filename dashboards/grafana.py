"""Push the rendered dashboards to a running Grafana over its HTTP API (grafana-client).

``push()`` makes sure of three things, in this order, and reports one ``Outcome`` for each
object (created, updated, unchanged or failed):

1. the folder, found by its uid (derived from its title, so every push finds the one the
   first created) or else by its title, and created when missing;
2. the Prometheus data source the panels query (uid ``corridor-prometheus``), created when
   missing and never changed afterwards (it may be tuned by hand, or provisioned);
3. every dashboard: read first, and written (``overwrite``, into the folder) only when the
   stored model differs from ours outside the fields Grafana writes itself, or lies in
   another folder. A second push of the same files therefore writes nothing.

Whatever stops the whole push (nothing answers, something other than Grafana answers, the
credentials are refused or lack a permission, Grafana fails) raises a ``PushError``
subclass carrying the URL, so the caller can word the fix. grafana-client is imported
where it is used: importing this module needs nothing beyond the standard library.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

from dashboards import Model

if TYPE_CHECKING:
    from grafana_client.api import GrafanaApi

DEFAULT_FOLDER = "Corridor Monitor"
DEFAULT_PROMETHEUS_URL = "http://prometheus:9090"
DEFAULT_TIMEOUT_S = 10.0
DATASOURCE_UID = "corridor-prometheus"
DATASOURCE_NAME = "Corridor Prometheus"
DEFAULT_MESSAGE = "corridor dashboards push"

# What Grafana writes into a dashboard's model on every save: its numeric id (local to one
# Grafana) and its version (one more per save). Both are left out when a stored model is
# compared with ours. The uid is ours (every model sends it) and Grafana keeps the rest as
# sent; where a dashboard sits (its folder) is in the answer's ``meta``, compared apart.
GRAFANA_OWNED_FIELDS = frozenset({"id", "version"})

# Grafana's rule for folder and dashboard uids.
_UID = re.compile(r"[A-Za-z0-9_-]{1,40}")


class Change(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    FAILED = "failed"


@dataclass(frozen=True)
class Outcome:
    """What a push did to one object in Grafana."""

    kind: str  # "folder", "datasource" or "dashboard"
    title: str
    uid: str
    change: Change
    detail: str = ""  # what changed, where it is, or why it failed; never a credential


@dataclass
class Report:
    """Every object's outcome, in the order the push handled them."""

    url: str
    version: str  # Grafana's, from /api/health; empty when it does not tell
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, change: Change) -> int:
        return sum(outcome.change is change for outcome in self.outcomes)

    @property
    def ok(self) -> bool:
        return self.count(Change.FAILED) == 0


class PushError(Exception):
    """The push cannot go on against the Grafana at ``url`` (shown without credentials)."""

    def __init__(self, url: str, reason: str) -> None:
        super().__init__(f"{url}: {reason}")
        self.url = url
        self.reason = reason


class Unreachable(PushError):
    """Nothing answered: connection refused, unknown host, timeout, TLS failure."""


class NotGrafana(PushError):
    """Something answered, but not with Grafana's HTTP API."""


class Unauthorized(PushError):
    """Grafana refused the credentials, or wants some (401)."""


class Forbidden(PushError):
    """The credentials are valid, but lack ``permission`` for ``action`` (403)."""

    def __init__(self, url: str, reason: str, action: str, permission: str) -> None:
        super().__init__(url, reason)
        self.action = action
        self.permission = permission


class GrafanaFailed(PushError):
    """Grafana answered with an error the push cannot go on from (5xx, or a refused folder)."""


class InvalidModel(ValueError):
    """A dashboard model Grafana would not take: no title, or a uid it does not accept."""


class _Refused(Exception):
    """A 4xx answer (other than 401 and 403) that the step asking handles itself."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


def folder_uid(title: str) -> str:
    """The folder's uid, derived from its title: lower-case words joined by ``-``.

    A title without Latin letters or digits gets a digest instead, which is just as stable.
    """
    slug = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:40].rstrip("-")
    return slug or "folder-" + hashlib.sha256(title.encode()).hexdigest()[:16]


def changed_fields(stored: Model, desired: Model) -> list[str]:
    """Top-level fields whose values differ, leaving out what Grafana writes itself."""
    keys = (stored.keys() | desired.keys()) - GRAFANA_OWNED_FIELDS
    return sorted(key for key in keys if stored.get(key) != desired.get(key) or (key in stored) != (key in desired))


def dashboard_payload(name: str, model: Model) -> Model:
    """The dashboard as sent to Grafana: its uid set (the file's stem when the model has none)
    and its numeric id cleared, since an id from another Grafana would name the wrong one."""
    uid = model.get("uid") or name
    title = model.get("title")
    if not isinstance(title, str) or not title.strip():
        raise InvalidModel(f"dashboard {name}: the model has no title")
    if not isinstance(uid, str) or not _UID.fullmatch(uid):
        raise InvalidModel(f"dashboard {name}: uid {uid!r} is not 1-40 letters, digits, '-' or '_'")
    return {**model, "uid": uid, "id": None}


@dataclass
class Grafana:
    """A Grafana HTTP API client and the URL it is shown as (without credentials)."""

    api: GrafanaApi
    url: str
    timeout: float

    def call(self, action: str, permission: str, request: Callable[[], Any]) -> Any:
        """Run one request, turning grafana-client's and niquests' errors into ours."""
        from grafana_client.client import (
            GrafanaClientError,
            GrafanaException,
            GrafanaServerError,
            GrafanaTimeoutError,
            GrafanaUnauthorizedError,
        )
        from niquests.exceptions import RequestException

        try:
            return request()
        except GrafanaUnauthorizedError:
            raise Unauthorized(self.url, f"401 Unauthorized when asked to {action}") from None
        except GrafanaClientError as error:
            message = _message(error.response)
            if error.status_code == 403:
                raise Forbidden(self.url, f"403 Forbidden when asked to {action}: {message}", action,
                                permission) from None
            raise _Refused(error.status_code, message) from None
        except GrafanaServerError as error:
            raise GrafanaFailed(self.url, f"{error.status_code} when asked to {action}: "
                                          f"{_message(error.response)}") from None
        except GrafanaTimeoutError:
            raise Unreachable(self.url, f"no answer within {self.timeout:g} s") from None
        except GrafanaException as error:
            raise Unreachable(self.url, _one_line(str(error))) from None
        except json.JSONDecodeError:
            raise NotGrafana(self.url, f"the answer when asked to {action} is not JSON") from None
        except RequestException as error:
            raise Unreachable(self.url, _reason(error)) from None

    def close(self) -> None:
        """Close the client's pooled connections."""
        self.api.client.s.close()

    def find(self, action: str, permission: str, request: Callable[[], Any]) -> dict[str, Any] | None:
        """``call()`` for a read: ``None`` when Grafana answers 404."""
        try:
            answer = self.call(action, permission, request)
        except _Refused as refused:
            if refused.status == 404:
                return None
            raise
        return answer if isinstance(answer, dict) else None

    def health(self) -> str:
        """Grafana's version, from ``GET /api/health`` (which needs no credentials)."""
        try:
            answer = self.call("report its health", "", lambda: self.api.client.GET("/health"))
        except _Refused as refused:
            raise NotGrafana(self.url, f"GET /api/health answered {refused.status}") from None
        except Forbidden:
            raise NotGrafana(self.url, "GET /api/health answered 403, which Grafana never does") from None
        if not isinstance(answer, dict) or "database" not in answer:
            raise NotGrafana(self.url, "GET /api/health did not answer like Grafana")
        return str(answer.get("version") or "")


def connect(url: str, token: str | None = None, timeout: float = DEFAULT_TIMEOUT_S) -> Grafana:
    """A client for the Grafana at ``url`` (its base URL); nothing is sent until ``push()``.

    ``token`` is a service account token or API key, sent as ``Authorization: Bearer``, or
    ``user:password`` for basic auth; without one, credentials in the URL are used. Raises
    ``ValueError`` for a URL that is not http(s).
    """
    from grafana_client.api import GrafanaApi

    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"{url!r} has an invalid port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{url!r} is not an http(s) URL such as http://grafana:3000")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    netloc = host if port is None else f"{host}:{port}"
    shown = urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))
    credential: str | tuple[str, str] | None = token or None
    if token and ":" in token:
        user, password = token.split(":", 1)
        credential = (user, password)
    elif not token and parts.username:
        credential = (unquote(parts.username), unquote(parts.password or ""))
    prefix = parts.path.strip("/")
    api = GrafanaApi(auth=credential, host=host, port=port, protocol=parts.scheme, timeout=timeout,
                     url_path_prefix=f"{prefix}/" if prefix else "")
    return Grafana(api, shown, timeout)


def push(grafana: Grafana, models: Mapping[str, Model], *, folder: str = DEFAULT_FOLDER,
         prometheus_url: str = DEFAULT_PROMETHEUS_URL, datasource: bool = True, message: str = DEFAULT_MESSAGE,
         on_outcome: Callable[[Outcome], None] | None = None) -> Report:
    """Make sure of the folder, the data source (unless ``datasource`` is false) and every
    dashboard in ``models`` (name -> JSON model); ``on_outcome`` hears of each as it is done."""
    payloads = [dashboard_payload(name, model) for name, model in models.items()]
    uids = [str(payload["uid"]) for payload in payloads]
    if len(set(uids)) < len(uids):
        twice = sorted({uid for uid in uids if uids.count(uid) > 1})
        raise InvalidModel(f"more than one dashboard has uid {', '.join(twice)}")
    report = Report(grafana.url, grafana.health())

    def record(outcome: Outcome) -> Outcome:
        report.outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
        return outcome

    target = record(_ensure_folder(grafana, folder))
    if datasource:
        record(_ensure_datasource(grafana, prometheus_url))
    for payload in payloads:
        record(_ensure_dashboard(grafana, payload, target, message))
    return report


def _ensure_folder(grafana: Grafana, title: str) -> Outcome:
    api = grafana.api
    uid = folder_uid(title)
    found = grafana.find(f"read folder {uid}", "folders:read", lambda: api.folder.get_folder(uid))
    if found is not None:
        return Outcome("folder", str(found.get("title", title)), uid, Change.UNCHANGED)
    folders = grafana.call("list folders", "folders:read", api.folder.get_all_folders)
    for existing in folders if isinstance(folders, list) else []:
        if isinstance(existing, dict) and existing.get("title") == title and existing.get("uid"):
            return Outcome("folder", title, str(existing["uid"]), Change.UNCHANGED, "found by its title")
    try:
        created = grafana.call(f"create folder {title!r}", "folders:create",
                               lambda: api.folder.create_folder(title, uid=uid))
    except _Refused as refused:
        raise GrafanaFailed(grafana.url, f"{refused.status} when asked to create folder {title!r}: "
                                         f"{refused.message}") from None
    return Outcome("folder", title, str(created.get("uid", uid)), Change.CREATED)


def _ensure_datasource(grafana: Grafana, prometheus_url: str) -> Outcome:
    api = grafana.api

    def outcome(change: Change, detail: str) -> Outcome:
        return Outcome("datasource", DATASOURCE_NAME, DATASOURCE_UID, change, detail)

    found = grafana.find(f"read data source {DATASOURCE_UID}", "datasources:read",
                         lambda: api.datasource.get_datasource_by_uid(DATASOURCE_UID))
    if found is not None:
        stored_url = str(found.get("url", ""))
        if stored_url.rstrip("/") == prometheus_url.rstrip("/"):
            return outcome(Change.UNCHANGED, stored_url)
        return outcome(Change.UNCHANGED, f"kept its URL {stored_url} (not {prometheus_url}); edit it in Grafana "
                                         "if Prometheus moved")
    payload = {"uid": DATASOURCE_UID, "name": DATASOURCE_NAME, "type": "prometheus", "access": "proxy",
               "url": prometheus_url, "basicAuth": False}
    try:
        grafana.call("create a data source", "datasources:create", lambda: api.datasource.create_datasource(payload))
    except _Refused as refused:
        if refused.status == 409:  # the name is taken by a data source with another uid
            return outcome(Change.FAILED, f"409: {refused.message}: the dashboards query uid {DATASOURCE_UID!r}, so "
                                          f"rename or delete the data source named {DATASOURCE_NAME!r} in Grafana")
        return outcome(Change.FAILED, f"{refused.status}: {refused.message}")
    return outcome(Change.CREATED, prometheus_url)


def _ensure_dashboard(grafana: Grafana, payload: Model, folder: Outcome, message: str) -> Outcome:
    api = grafana.api
    uid, title = str(payload["uid"]), str(payload["title"])

    def outcome(change: Change, detail: str = "") -> Outcome:
        return Outcome("dashboard", title, uid, change, detail)

    try:
        stored = grafana.find(f"read dashboard {uid}", "dashboards:read", lambda: api.dashboard.get_dashboard(uid))
    except _Refused as refused:
        return outcome(Change.FAILED, f"reading it: {refused.status}: {refused.message}")
    changes: list[str] = []
    if stored is not None:
        meta = stored.get("meta") or {}
        current = stored.get("dashboard") or {}
        changes = changed_fields(current, payload)
        if meta.get("folderUid") != folder.uid:
            changes.append(f"moved from folder {meta.get('folderTitle') or meta.get('folderUid') or '(root)'}")
        if not changes:
            return outcome(Change.UNCHANGED, f"version {current.get('version', '?')}")
        if meta.get("provisioned"):
            return outcome(Change.FAILED, "differs, but Grafana provisions it from files: change those instead")
    body = {"dashboard": payload, "folderUid": folder.uid, "message": message, "overwrite": True}
    try:
        saved = grafana.call(f"save dashboard {uid}", "dashboards:write", lambda: api.dashboard.update_dashboard(body))
    except _Refused as refused:
        return outcome(Change.FAILED, f"{refused.status}: {refused.message}")
    where = f"version {saved.get('version', '?')}, {_origin(grafana.url)}{saved.get('url', '')}"
    if stored is None:
        return outcome(Change.CREATED, where)
    return outcome(Change.UPDATED, f"{', '.join(changes)}; {where}")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _message(response: Any) -> str:
    if isinstance(response, dict) and "message" in response:
        return _one_line(str(response["message"]))
    return _one_line(str(response))[:200] or "(no message)"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _reason(error: BaseException) -> str:
    """Why a connection failed, in a few words, from the innermost cause urllib3 chained."""
    chain: list[BaseException] = []
    link: BaseException | None = error
    while link is not None and link not in chain:
        chain.append(link)
        link = link.__cause__ or link.__context__
    for link in chain:
        if isinstance(link, ConnectionRefusedError):
            return "connection refused"
        if isinstance(link, socket.gaierror):
            return "host name not found"
        if isinstance(link, ssl.SSLError):
            return f"TLS failed: {_one_line(str(link))}"
        if isinstance(link, TimeoutError):
            return "timed out"
    return _one_line(str(chain[-1]))
