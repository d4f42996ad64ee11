"""The OpenAPI 3 document of the provisioning API, served at /v1/openapi.json.

Hand-written to match api.py; tests run schemathesis against the live listener with it.
"""

from __future__ import annotations

from typing import Any

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
         "schema": {"type": "string", "pattern": "^@[^:\\s]+:[^\\s]+$"},
         "description": "The Matrix user the request is made for, e.g. @alice:example.org"}
_ROOM = {"name": "roomId", "in": "path", "required": True,
         "schema": {"type": "string", "pattern": "^![^\\s/]+$", "maxLength": 255}}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_CONN_REF = {"$ref": "#/components/schemas/Connection"}
_AUTH_ERRORS = (400, 401, 403, 404, 405, 413)


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
