"""Checks a response against the Lambda service model botocore ships (required members,
member names, types, enums): what a boto3 client would get from the real service.

The suite asserts only the keys its YAML lists; this catches the rest, such as a required
detail the suite never mentions.
"""

from __future__ import annotations

import datetime
import functools
from typing import Any

import botocore.session


@functools.cache
def _model() -> Any:
    return botocore.session.get_session().get_service_model("lambda")


def _check(shape: Any, value: Any, path: str, problems: list[str]) -> None:
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            problems.append(f"{path}: {type(value).__name__}, not a structure")
            return
        problems.extend(
            f"{path}.{m}: required, missing" for m in shape.required_members if m not in value
        )
        for key, item in value.items():
            if key not in shape.members:
                problems.append(f"{path}.{key}: not in the service model")
            else:
                _check(shape.members[key], item, f"{path}.{key}", problems)
    elif kind == "list":
        if not isinstance(value, list):
            problems.append(f"{path}: {type(value).__name__}, not a list")
            return
        for item in value:
            _check(shape.member, item, f"{path}[]", problems)
    elif kind == "string":
        if not isinstance(value, str):
            problems.append(f"{path}: {value!r} is not a string")
        elif shape.enum and value not in shape.enum:
            problems.append(f"{path}: {value!r} is not one of the enum values")
    elif kind in ("integer", "long"):
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append(f"{path}: {value!r} is not an integer")
    elif kind == "boolean":
        if not isinstance(value, bool):
            problems.append(f"{path}: {value!r} is not a boolean")
    elif kind == "timestamp" and not isinstance(value, datetime.datetime):
        problems.append(f"{path}: {value!r} is not a datetime")


def check_output(operation: str, response: dict[str, Any]) -> list[str]:
    """Problems of ``response`` as the output of ``operation`` (e.g. GetDurableExecution)."""
    problems: list[str] = []
    body = {k: v for k, v in response.items() if k != "ResponseMetadata"}
    _check(_model().operation_model(operation).output_shape, body, operation, problems)
    return problems
