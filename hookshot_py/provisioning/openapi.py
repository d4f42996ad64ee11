"""The OpenAPI 3 document of the provisioning API, served at /v1/openapi.json.

Hand-written to match api.py; tests run schemathesis against the live listener with it.
"""

from __future__ import annotations

from typing import Any

from hookshot_py.provisioning.params import MAX_PER_PAGE, USER_ID_PATTERN

_ERROR = {
    "type": "object",
    "required": ["errcode", "error"],
    "properties": {
        "errcode": {"type": "string", "pattern": "^HS_"},
        "error": {"type": "string"},
        "validationErrors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["path", "message"],
                "properties": {"path": {"type": "string"}, "message": {"type": "string"}},
            },
        },
        "existingConnection": {"$ref": "#/components/schemas/Connection"},
    },
}

_CONNECTION = {
    "type": "object",
    "required": ["type", "eventType", "id", "service", "botUserId", "config"],
    "properties": {
        "type": {"type": "string"},
        "eventType": {"type": "string"},
        "id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
        "service": {"type": "string"},
        "botUserId": {"type": "string"},
        "config": {"type": "object"},
        "secrets": {"type": "object"},
        "warning": {
            "type": "object",
            "properties": {"header": {"type": "string"}, "message": {"type": "string"}},
        },
        "unsupported": {
            "type": "object",
            "description": "Set on a connection this bridge keeps but does not serve (its service is disabled "
            "or not implemented); its state is untouched and it cannot be changed here.",
            "required": ["reason"],
            "properties": {"reason": {"type": "string"}},
        },
    },
}

_TIME = {"type": "string", "format": "date-time", "nullable": True}
_DELIVERY = {
    "type": "object",
    "required": ["id", "eventId", "eventType", "sender", "status", "attempts", "createdAt"],
    "properties": {
        "id": {"type": "integer", "description": "Also sent as X-Matrix-Hookshot-Delivery"},
        "eventId": {"type": "string"},
        "eventType": {"type": "string"},
        "sender": {"type": "string"},
        "status": {"type": "string", "enum": ["pending", "delivered", "failed"]},
        "attempts": {"type": "integer"},
        "createdAt": {"type": "string", "format": "date-time"},
        "lastAttemptAt": _TIME,
        "nextAttemptAt": _TIME,
        "finishedAt": _TIME,
        "responseStatus": {"type": "integer", "nullable": True},
        "error": {"type": "string", "nullable": True},
    },
}
_DELIVERY_LOG = {
    "type": "object",
    "required": ["deliveries", "counts", "next"],
    "properties": {
        "deliveries": {"type": "array", "items": {"$ref": "#/components/schemas/Delivery"}},
        "counts": {
            "type": "object",
            "properties": {s: {"type": "integer"} for s in ("pending", "delivered", "failed")},
        },
        "next": {"type": "integer", "nullable": True, "description": "The `before` of the next page"},
    },
}

_CONNECTION_TYPE = {
    "type": "object",
    "required": ["type", "eventType", "service", "botUserId"],
    "properties": {
        "type": {"type": "string"},
        "eventType": {"type": "string"},
        "service": {"type": "string"},
        "botUserId": {"type": "string"},
    },
}


def _err(*codes: int) -> dict[str, Any]:
    return {
        str(code): {
            "description": "Error",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        for code in codes
    }


def _ok(schema: dict[str, Any], description: str = "OK") -> dict[str, Any]:
    return {"200": {"description": description, "content": {"application/json": {"schema": schema}}}}


_USER = {"name": "userId", "in": "query", "required": True,
         "schema": {"type": "string", "pattern": USER_ID_PATTERN},
         "description": "The Matrix user the request is made for, e.g. @alice:example.org"}
_ROOM = {"name": "roomId", "in": "path", "required": True,
         "schema": {"type": "string", "pattern": "^![^\\s/]+$", "maxLength": 255}}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_CONN_REF = {"$ref": "#/components/schemas/Connection"}
_AUTH_ERRORS = (400, 401, 403, 404, 405, 413)
_PAGE = {"name": "page", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1}}
_PER_PAGE = {"name": "perPage", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": 100}}

# The service routes answer 404 HS_DISABLED_FEATURE when the service is not configured.
_GITLAB_INSTANCES = {
    "type": "object",
    "required": ["instances"],
    "properties": {
        "instances": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "url", "loggedIn"],
                "properties": {"name": {"type": "string"}, "url": {"type": "string"}, "loggedIn": {"type": "boolean"}},
            },
        }
    },
}
_GITLAB_PROJECTS = {
    "type": "object",
    "required": ["loggedIn"],
    "properties": {
        "loggedIn": {"type": "boolean"},
        "nextPage": {"type": "integer", "nullable": True},
        "projects": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "path", "url", "state"],
                "properties": {
                    "name": {"type": "string"},
                    "path": {"type": "string"},
                    "url": {"type": "string"},
                    "avatarUrl": {"type": "string", "nullable": True},
                    "description": {"type": "string", "nullable": True},
                    "state": {
                        "type": "object",
                        "required": ["instance", "path"],
                        "properties": {"instance": {"type": "string"}, "path": {"type": "string"}},
                    },
                },
            },
        },
    },
}

# A service route: 404 HS_DISABLED_FEATURE while the service is off, 502 when the forge fails.
_SERVICE_ERRORS = (400, 401, 403, 404, 502)

_JIRA_INSTANCE = {
    "type": "object",
    "required": ["name", "url", "id"],
    "properties": {"name": {"type": "string"}, "url": {"type": "string"}, "id": {"type": "string"}},
}
_JIRA_PROJECT = {
    "type": "object",
    "required": ["key", "name", "id", "url"],
    "properties": {
        "key": {"type": "string"},
        "name": {"type": "string"},
        "id": {"type": "string"},
        "url": {"type": "string", "description": "Create a JiraProject connection with this `url`."},
    },
}


def _page_param(name: str, description: str, maximum: int | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer", "minimum": 1}
    if maximum is not None:
        schema["maximum"] = maximum
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


def _jira_paths() -> dict[str, Any]:
    """Seed 000's JIRA routes (served by hookshot_py/jira/provisioning.py)."""
    return {
        "/v1/jira/oauth": {
            "get": {
                "summary": "A JIRA Cloud login link for the user",
                "parameters": [_USER],
                "responses": {
                    **_ok({"type": "object", "required": ["url"], "properties": {"url": {"type": "string"}}}),
                    **_err(*_SERVICE_ERRORS),
                },
            }
        },
        "/v1/jira/account": {
            "get": {
                "summary": "Whether the user is logged in to JIRA, and the sites (instances) they can reach",
                "parameters": [_USER],
                "responses": {
                    **_ok(
                        {
                            "type": "object",
                            "required": ["loggedIn"],
                            "properties": {
                                "loggedIn": {"type": "boolean"},
                                "instances": {"type": "array", "items": _JIRA_INSTANCE},
                            },
                        }
                    ),
                    **_err(*_SERVICE_ERRORS),
                },
            }
        },
        "/v1/jira/instances/{instanceName}/projects": {
            "get": {
                "summary": "The projects the user can see on a JIRA site (all of them, or one page)",
                "parameters": [
                    {"name": "instanceName", "in": "path", "required": True, "schema": {"type": "string"}},
                    _USER,
                    _page_param("page", "The page (from 1); with `perPage`, one page is listed"),
                    _page_param("perPage", "Projects per page (default 10)", MAX_PER_PAGE),
                    {"name": "search", "in": "query", "required": False,
                     "schema": {"type": "string", "maxLength": 200}, "description": "Filter by name or key"},
                ],
                "responses": {**_ok({"type": "array", "items": _JIRA_PROJECT}), **_err(*_SERVICE_ERRORS)},
            }
        },
    }


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "hookshot_py provisioning API",
            "version": "1",
            "description": "Manage a room's connections on behalf of a user (matrix-hookshot's provisioning API v1).",
        },
        "security": [{"bearer": []}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": _ERROR,
                "Connection": _CONNECTION,
                "ConnectionType": _CONNECTION_TYPE,
                "Delivery": _DELIVERY,
                "DeliveryLog": _DELIVERY_LOG,
            },
        },
        "paths": {
            **_jira_paths(),
            "/v1/health": {
                "get": {
                    "summary": "Status of the provisioning API",
                    "security": [],
                    "responses": _ok({"type": "object"}),
                }
            },
            "/v1/connectiontypes": {
                "get": {
                    "summary": "Connection types enabled on this bridge",
                    "responses": {
                        **_ok(
                            {"type": "object", "additionalProperties": {"$ref": "#/components/schemas/ConnectionType"}}
                        ),
                        **_err(401),
                    },
                }
            },
            "/v1/{roomId}/connections": {
                "get": {
                    "summary": "The connections of a room",
                    "parameters": [_ROOM, _USER],
                    "responses": {**_ok({"type": "array", "items": _CONN_REF}), **_err(*_AUTH_ERRORS)},
                }
            },
            "/v1/{roomId}/connections/{id}": {
                "get": {
                    "summary": "One connection",
                    "parameters": [_ROOM, _ID, _USER],
                    "responses": {**_ok(_CONN_REF), **_err(*_AUTH_ERRORS)},
                },
                "patch": {
                    "summary": "Update a connection's state (merged over the current state, re-validated)",
                    "parameters": [_ROOM, _ID, _USER],
                    "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
                    "responses": {**_ok(_CONN_REF), **_err(*_AUTH_ERRORS, 409)},
                },
                "delete": {
                    "summary": "Remove a connection",
                    "parameters": [_ROOM, _ID, _USER],
                    "responses": {
                        **_ok({"type": "object", "required": ["ok"], "properties": {"ok": {"type": "boolean"}}}),
                        **_err(*_AUTH_ERRORS),
                    },
                },
                "put": {
                    "summary": "Create a connection; here `id` is the connection's state event type",
                    "parameters": [_ROOM, _ID, _USER],
                    "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
                    "responses": {**_ok(_CONN_REF), **_err(*_AUTH_ERRORS, 409)},
                },
            },
            "/v1/gitlab/instances": {
                "get": {
                    "summary": "The configured GitLab instances, and whether the user has a token for each",
                    "parameters": [_USER],
                    "responses": {**_ok(_GITLAB_INSTANCES), **_err(400, 401, 404)},
                }
            },
            "/v1/gitlab/instances/{name}/projects": {
                "get": {
                    "summary": "The projects of an instance the user may connect (Developer access or more), "
                               "most recently active first",
                    "parameters": [
                        {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                        _USER,
                        {"name": "search", "in": "query", "required": False,
                         "schema": {"type": "string", "maxLength": 100}},
                        _PAGE,
                        _PER_PAGE,
                    ],
                    "responses": {**_ok(_GITLAB_PROJECTS), **_err(400, 401, 403, 404, 502)},
                }
            },
            "/v1/{roomId}/connections/{id}/deliveries": {
                "get": {
                    "summary": "An outbound webhook's delivery log, newest first (for users who may edit it)",
                    "parameters": [
                        _ROOM, _ID, _USER,
                        {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500,
                                                                     "default": 50}},
                        {"name": "before", "in": "query", "schema": {"type": "integer", "minimum": 1},
                         "description": "Only deliveries with a smaller id (the `next` of the previous page)"},
                        {"name": "status", "in": "query",
                         "schema": {"type": "string", "enum": ["pending", "delivered", "failed"]}},
                    ],
                    "responses": {**_ok({"$ref": "#/components/schemas/DeliveryLog"}), **_err(*_AUTH_ERRORS)},
                },
            },
        },
    }
