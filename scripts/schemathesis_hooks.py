"""schemathesis hooks for scripts/check-contract.sh (loaded through SCHEMATHESIS_HOOKS).

Idempotency-Key: a real client sends a new key for each new request and the same key only
to retry the same request (docs/API.md). Generated requests draw keys from the schema's
pattern, so two different generated requests often share a key, which the server rightly
answers `422` ("was already used for a different request") and the positive-data check
counts as a schema-valid request rejected: whether a key was used before is server state,
which no schema can state. So every *valid* generated key is made unique per call; invalid
ones (negative testing: empty, too long, spaces) are sent as generated. Key reuse, replay
and conflicts are tested in tests/api/idempotency.rs and tests/api/idempotent_posts.rs.
"""
import re
import uuid

import schemathesis

_VALID = re.compile(r"^[!-~]{1,255}$")


@schemathesis.hook
def before_call(context, case, kwargs):
    headers = case.headers or {}
    for name in list(headers):
        if name.lower() == "idempotency-key":
            value = headers[name]
            if isinstance(value, str) and _VALID.match(value):
                headers[name] = f"st-{uuid.uuid4()}"
