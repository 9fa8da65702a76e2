"""Checks every request that reached the handler against the document, with an OpenAPI
validator independent of palisade and of Schemathesis (openapi-core, from PyPI).

Usage: schemathesis_verify.py DOCUMENT RECORD.jsonl

RECORD.jsonl is what examples/openapi_guard.rs wrote: one line per request the handler saw. A
request the validator forbids is a failure (palisade let it through), except for the documented
differences counted at the end:

- security requirements: the guard runs validation alone, and credentials are authentication's
  business (palisade's authn layers);
- a `readOnly` property sent in a request: OpenAPI says it SHOULD NOT be sent, which forbids
  nothing (palisade does not strip or refuse it; see docs/validate.md);
- an empty query value (`allowEmptyValue`): deprecated in OpenAPI 3.1 and not enforced;
- a float with no fractional part for `type: integer` in a body (`2.0`): an integer in JSON
  Schema since draft 6, which palisade applies to 3.0 documents too;
- what openapi-core itself cannot read (label/matrix paths, some object parameters, `+json`
  bodies), each named.
Exit status 1 when a failure remains.
"""

import collections
import re
import json
import sys
import warnings
from urllib.parse import parse_qsl, urlparse

import yaml
from openapi_core import OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

warnings.simplefilter("ignore")


class Received:
    """One recorded request, in the shape openapi-core reads."""

    def __init__(self, seen, base):
        u = urlparse(base)
        self.host_url = f"{u.scheme}://{u.netloc}"
        self.path = u.path.rstrip("/") + seen["path"]
        self.full_url_pattern = self.host_url + self.path
        self.method = seen["method"].lower()
        cookies = {}
        for part in seen["headers"].get("cookie", "").split(";"):
            if "=" in part:
                k, v = part.strip().split("=", 1)
                cookies[k] = v
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(parse_qsl(seen["query"] or "", keep_blank_values=True)),
            header=Headers(seen["headers"]),
            cookie=ImmutableMultiDict(cookies),
        )
        body = seen["body"]
        self.body = body.encode() if isinstance(body, str) else b""
        self.content_type = seen["headers"].get("content-type", "")
        self.mimetype = self.content_type.split(";")[0]


def chain(error):
    """The error, its causes and their schema errors, as one text."""
    parts = []
    while error is not None and len(parts) < 8:
        parts.append(str(error))
        parts.extend(str(e) for e in getattr(error, "schema_errors", []) or [])
        error = error.__cause__ or error.__context__
    return " | ".join(parts)


def excuse(error, seen):
    text = chain(error)
    if type(error).__name__ == "SecurityValidationError":
        return "security requirement (authentication, not validation)"
    if "read-only property" in text:
        return "a readOnly property in a request (SHOULD NOT, not forbidden)"
    if "cannot be empty" in text:
        return "an empty query value (allowEmptyValue, deprecated in 3.1)"
    # Where openapi-core itself cannot read what the document declares (its limits, not the
    # request's): label/matrix path values, some object parameters,
    # bodies of a `+json` media type (left as bytes).
    if "Missing required path parameter" in text and re.search(r"'[.;]\w+\*?'", text):
        return "openapi-core cannot read label/matrix path values"
    if "dictionary update sequence" in text:
        return "openapi-core cannot read some object parameters (simple headers, empty forms)"
    if "+json" in seen["headers"].get("content-type", "") and "is not of type 'object'" in text and "b'" in text:
        return "openapi-core leaves a +json body unparsed"
    return None


def as_integers(value):
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: as_integers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_integers(v) for v in value]
    return value


def integral(api, seen, base):
    """openapi-core reads OpenAPI 3.0's `integer` as an integer literal; palisade reads it as
    JSON Schema does since draft 6 (a number with no fractional part, `2.0`). The request is
    excused when, with such floats written as integers, it is valid."""
    if "json" not in seen["headers"].get("content-type", ""):
        return None
    try:
        body = json.loads(seen["body"])
    except ValueError:
        return None
    fixed = dict(seen, body=json.dumps(as_integers(body)))
    if fixed["body"] == seen["body"]:
        return None
    try:
        api.validate_request(Received(fixed, base))
    except Exception:
        return None
    return "an integral float for `type: integer` (JSON Schema since draft 6)"


def main(doc_path, record_path):
    api = OpenAPI.from_file_path(doc_path)
    with open(doc_path) as f:
        doc = yaml.safe_load(f)
    base = ((doc.get("servers") or [{}])[0].get("url") or "http://localhost").rstrip("/")
    if not base.startswith("http"):
        base = "http://localhost" + base
    excused = collections.Counter()
    failures = []
    received = 0
    with open(record_path) as f:
        for line in f:
            seen = json.loads(line)
            received += 1
            try:
                api.validate_request(Received(seen, base))
            except Exception as error:  # every validation error type, judged below
                reason = excuse(error, seen) or integral(api, seen, base)
                if reason:
                    excused[reason] += 1
                else:
                    failures.append((seen, error))
    print(f"  independent check: {received} requests reached the handler, {len(failures)} forbidden")
    for reason, n in excused.most_common():
        print(f"    {n:6d} excused: {reason}")
    for seen, error in failures[:10]:
        print(f"    FORBIDDEN: {seen['method']} {seen['path']}?{seen['query'] or ''}: {chain(error)[:400]}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
