"""The Helm chart's values.schema.json, generated so that the sidecar settings the chart accepts
(`config`) are exactly the sidecar's own (jobsight.settings.SETTINGS): an unknown key is refused by
`helm install`, not by a crash-looping pod."""

from __future__ import annotations

import json
from typing import Any

from jobsight.settings import SETTINGS

# Set by the chart itself (or from Secrets), never through `config`.
NOT_IN_CONFIG = {"database_url", "host", "port", "temporal_api_key", "instance"}

STRING = {"type": "string"}
BOOL = {"type": "boolean"}
PORT = {"type": "integer", "minimum": 1, "maximum": 65535}
RESOURCES = {
    "type": "object",
    "properties": {"requests": {"type": "object"}, "limits": {"type": "object"}},
    "additionalProperties": False,
}
NAME = {"type": "string", "pattern": "^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", "maxLength": 253}


def obj(properties: dict[str, Any], required: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        **extra,
    }
    if required:
        schema["required"] = list(required)
    return schema


def config_schema() -> dict[str, Any]:
    properties = {}
    for setting in SETTINGS:
        if setting.field in NOT_IN_CONFIG:
            continue
        properties[setting.field] = {
            "type": ["string", "number", "integer", "boolean", "array", "object"],
            "description": f"{setting.env}: {setting.help}",
        }
    return obj(
        properties,
        description="The sidecar's settings (YAML keys of the settings table, docs/settings.md).",
    )


def image() -> dict[str, Any]:
    return obj(
        {
            "repository": {"type": "string", "minLength": 1},
            "tag": STRING,
            "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
        },
        ("repository",),
    )


def monitor() -> dict[str, Any]:
    return obj(
        {
            "enabled": BOOL,
            "interval": {"type": "string", "pattern": "^[0-9]+(ms|s|m|h)$"},
            "labels": {"type": "object", "additionalProperties": STRING},
            "tlsConfig": {"type": "object"},  # the Prometheus Operator's own schema checks these
            "basicAuth": {"type": "object"},
        }
    )


def probe() -> dict[str, Any]:
    positive = {"type": "integer", "minimum": 1}
    return obj(
        {
            "periodSeconds": positive,
            "timeoutSeconds": positive,
            "failureThreshold": positive,
            "initialDelaySeconds": {"type": "integer", "minimum": 0},
        }
    )


def schema() -> dict[str, Any]:
    return {
        "$schema": "https://json-schema.org/draft-07/schema#",
        "title": "jobsight chart values",
        **obj(
            {
                "global": {"type": "object", "description": "values Helm shares with subcharts"},
                "mode": {
                    "enum": ["exampleApp", "standalone", "none"],
                    "description": "what the chart deploys",
                },
                "image": image(),
                "imagePullSecrets": {"type": "array", "items": obj({"name": NAME}, ("name",))},
                "database": obj(
                    {"existingSecret": NAME, "key": {"type": "string", "minLength": 1}},
                    ("existingSecret", "key"),
                ),
                "temporal": obj(
                    {
                        "enabled": BOOL,
                        "address": STRING,
                        "httpAddress": {"type": "string", "pattern": "^([^:/]+:[0-9]+)?$"},
                        "namespace": STRING,
                        "taskQueues": {"type": "array", "items": STRING, "minItems": 1},
                        "tls": BOOL,
                        "uiUrl": STRING,
                        "apiKey": obj({"existingSecret": STRING, "key": STRING}),
                    },
                    if_={},
                ),
                "sidecar": obj(
                    {
                        "port": PORT,
                        "native": BOOL,
                        "resources": RESOURCES,
                        "extraEnv": {
                            "type": "array",
                            "items": {"type": "object", "required": ["name"]},
                        },
                        "livenessProbe": probe(),
                        "readinessProbe": probe(),
                        "database": obj({"existingSecret": STRING, "key": STRING}),
                        "webConfig": obj(
                            {
                                "existingSecret": STRING,
                                "key": {"type": "string", "minLength": 1},
                                "tls": BOOL,
                            }
                        ),
                    }
                ),
                "config": config_schema(),
                "exampleApp": obj(
                    {
                        "replicas": {"type": "integer", "minimum": 0},
                        "injectSidecar": BOOL,
                        "image": image(),
                        "command": {"type": "array", "items": STRING, "minItems": 1},
                        "readinessFromSidecar": BOOL,
                        "versionLabel": {"type": "string", "pattern": "^[A-Za-z0-9./_-]*$"},
                        "resources": RESOURCES,
                    }
                ),
                "standalone": obj({"replicas": {"type": "integer", "minimum": 1}}),
                "serviceAccount": obj({"create": BOOL, "name": STRING}),
                "podSecurityContext": {"type": "object"},
                "securityContext": {"type": "object"},
                "metrics": obj(
                    {
                        "service": obj({"enabled": BOOL}),
                        "serviceMonitor": monitor(),
                        "podMonitor": monitor(),
                    }
                ),
                "prometheusRule": obj({"enabled": BOOL, "labels": {"type": "object"}}),
                "dashboards": obj(
                    {"enabled": BOOL, "labels": {"type": "object", "additionalProperties": STRING}}
                ),
                "networkPolicy": obj({"enabled": BOOL, "from": {"type": "array"}}),
                "argoRollouts": obj(
                    {
                        "analysisTemplate": obj(
                            {
                                "enabled": BOOL,
                                "successCondition": STRING,
                                "failureCondition": STRING,
                            }
                        )
                    }
                ),
                "flagger": obj(
                    {"metricTemplate": obj({"enabled": BOOL, "prometheusAddress": STRING})}
                ),
            },
            ("mode", "image", "database", "sidecar"),
        ),
    }


def render() -> str:
    data = schema()
    temporal = data["properties"]["temporal"]
    temporal.pop("if_", None)
    # With Temporal on, its address is required.
    temporal["if"] = {"properties": {"enabled": {"const": True}}, "required": ["enabled"]}
    temporal["then"] = {"properties": {"address": {"type": "string", "pattern": "^[^:]+:[0-9]+$"}}}
    return json.dumps(data, indent=2) + "\n"
