"""Schemathesis checks for palisade's OpenAPI validation (loaded by .ci/schemathesis).

Two checks replace Schemathesis's own `positive_data_acceptance` and `negative_data_rejection`,
keeping their judgement and adding the exceptions palisade documents (docs/validate.md), each
counted and printed at the end so that none hides a failure silently:

- a body whose media type palisade cannot check (XML, multipart, octet-stream...) is refused
  with 415 by default: a valid one refused that way is the documented policy, not a failure;
- an invalid `label` or `matrix` object or array as Schemathesis writes it can read as a valid one;
- `format: float` bounds a number to binary32's range, which Schemathesis does not;
- a malformed `Content-Type` sent to an operation without a request body describes no
  body: nothing in the document forbids it;
- an integer parameter written as a float (`/pets/2.0`) is refused: JSON Schema's `integer`
  admits it, but the handler's own integer parse would not;
- in a body, a float with no fractional part (`2.0`, `1e16`) is an `integer` (JSON Schema
  since draft 6), which Schemathesis's negative mode does not expect;
- a missing credential is the authentication layer's business, not validation's: the guard runs
  validation alone, so a request without an `api_key` security scheme's header passing is not a
  failure either.

Every received request is also written by the server (examples/openapi_guard.rs) and checked
independently afterwards (.ci/schemathesis_verify.py).
"""

import atexit
import collections
import re

import schemathesis
from schemathesis.specs.openapi import checks as builtin

EXCUSED = collections.Counter()

CHECKABLE = re.compile(r"^(application/json|application/[^;]*\+json|application/x-www-form-urlencoded)\b", re.I)


def _resolve(doc, value):
    for _ in range(16):
        ref = value.get("$ref") if isinstance(value, dict) else None
        if not isinstance(ref, str) or not ref.startswith("#/"):
            return value
        value = doc
        for part in ref[2:].split("/"):
            value = value.get(part.replace("~1", "/").replace("~0", "~"), {})
    return value


def _param(case, name, location):
    """The Parameter Object `name` in `location` as the document declares it (the operation's
    or its path item's; a security scheme is not a parameter)."""
    doc = case.operation.schema.raw_schema
    item = _resolve(doc, doc.get("paths", {}).get(case.operation.path, {}))
    declared = list(item.get("parameters", []) or []) + list(
        case.operation.definition.raw.get("parameters", []) or []
    )
    for p in declared:
        p = _resolve(doc, p)
        if not isinstance(p, dict) or p.get("in") != location:
            continue
        if (p.get("name") or "").lower() == (name or "").lower():
            return p
    return None


def _declared_header(case, name):
    return _param(case, name, "header") is not None


# `format: float` is the range of an IEEE 754 binary32 (OpenAPI 3.1 §4.2); a larger number
# breaks it.
FLOAT_RANGE = re.compile(r'"keyword":"m(?:ax|in)imum","detail":"value is (?:greater|less) than the m(?:ax|in)imum of -?3\.4028234663852886e\+38"')


def _has_integral_float(value):
    """Whether a JSON value holds a float with no fractional part anywhere: JSON Schema's
    `integer` since draft 6 (palisade reads OpenAPI 3.0 schemas as 2020-12 ones)."""
    if isinstance(value, float):
        return value.is_integer()
    if isinstance(value, dict):
        return any(_has_integral_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_integral_float(v) for v in value)
    return False


def _integral_float_param(case):
    """Whether a parameter value is a float with no fractional part (`1165.0`): JSON Schema's
    `integer`, but not an integer literal, so a handler's own parse (`Path<u64>`) would refuse
    it; palisade refuses it first (docs/validate.md)."""
    for values in (case.path_parameters, case.query, case.headers, case.cookies):
        for v in (values or {}).values():
            for item in v if isinstance(v, list) else [v]:
                if isinstance(item, float) and item.is_integer():
                    return True
    return False


@schemathesis.check
def palisade_accepts_valid(ctx, response, case):
    media = case.media_type or ""
    if response.status_code == 415 and media and not CHECKABLE.match(media):
        EXCUSED[f"415 for unchecked media type {media.split(';')[0]}"] += 1
        return None
    if response.status_code == 422 and _integral_float_param(case):
        EXCUSED["an integer parameter written as a float (`2.0`), refused"] += 1
        return None
    if response.status_code == 422 and FLOAT_RANGE.search(response.text or ""):
        EXCUSED["a number beyond binary32 under `format: float`"] += 1
        return None
    return builtin.positive_data_acceptance(ctx, response, case)


@schemathesis.check
def palisade_refuses_invalid(ctx, response, case):
    meta = case.meta
    data = getattr(getattr(meta, "phase", None), "data", None)
    description = getattr(data, "description", "") or ""
    name = getattr(data, "parameter", None)
    location = getattr(getattr(data, "parameter_location", None), "name", "").lower()
    m = re.search(r"`([^`]+)` (?:at|in) header", description)
    header = m.group(1) if m else (name if location == "header" else None)
    if (
        "violates `type`" in description
        and _has_integral_float(case.body)
        and 200 <= response.status_code < 300
    ):
        EXCUSED["an integral float (`2.0`, `1e16`) for `type: integer` in a body"] += 1
        return None
    if (
        description.startswith("Malformed Content-Type")
        and "requestBody" not in case.operation.definition.raw
        and 200 <= response.status_code < 300
    ):
        EXCUSED["a malformed Content-Type on an operation that declares no body"] += 1
        return None
    if header and 200 <= response.status_code < 300 and not _declared_header(case, header):
        EXCUSED["a security scheme's credential missing (authentication is not validation)"] += 1
        return None
    # A label or matrix object or array is a delimited list: an invalid value as Schemathesis
    # serializes it (`.,null%2Cnull`, `.AAA`) reads, under RFC 6570, as a valid one
    # (`{"": "null,null"}`, `["AAA"]`), which palisade then rightly accepts.
    names = [name] if name else [
        m.parameter for m in getattr(data, "mutations", []) or [] if getattr(m, "parameter", None)
    ]
    params = [_param(case, n, "path") for n in names] if location == "path" else []
    if (
        params
        and all(
            p is not None
            and p.get("style") in ("label", "matrix")
            and (_resolve(case.operation.schema.raw_schema, p.get("schema") or {})).get("type")
            in ("object", "array")
            for p in params
        )
        and 200 <= response.status_code < 300
    ):
        EXCUSED["an invalid label/matrix object or array serialized into a valid one"] += 1
        return None
    return builtin.negative_data_rejection(ctx, response, case)


@atexit.register
def _summary():
    if EXCUSED:
        print("palisade: documented exceptions (not failures):")
        for reason, n in EXCUSED.most_common():
            print(f"  {n:6d}  {reason}")
