"""Webhook signatures: HMAC-SHA256 over the timestamp and the body, as a receiver checks them.

The sender adds `X-Maskcam-Timestamp: <unix seconds>` and `X-Maskcam-Signature: sha256=<hex>`, where
the hex is HMAC-SHA256(secret, "<timestamp>." + body). A receiver recomputes it over the raw body,
compares in constant time, and refuses a timestamp more than 300 s from its clock (a captured request
replayed later): docs/API.md shows that check, and the tests' receiver (`tests/webhook_helpers.py`) makes
it.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "X-Maskcam-Signature"
TIMESTAMP_HEADER = "X-Maskcam-Timestamp"
UID_HEADER = "X-Maskcam-Uid"
EVENT_HEADER = "X-Maskcam-Event"


def signature(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode("utf-8"), f"{timestamp}.".encode("ascii") + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def signed_headers(secret: str | None, body: bytes, now: float | None = None) -> dict[str, str]:
    """The timestamp and, with a secret, the signature headers of one delivery."""
    timestamp = int(time.time() if now is None else now)
    headers = {TIMESTAMP_HEADER: str(timestamp)}
    if secret:
        headers[SIGNATURE_HEADER] = signature(secret, timestamp, body)
    return headers
