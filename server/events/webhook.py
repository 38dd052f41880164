"""A webhook: each stored passage POSTed as JSON to one URL, signed (`server.events.signing`).

Runs in its dispatcher's thread with the standard library's HTTP client: a blocking POST with a timeout,
never on the event loop. Any answer but 2xx, a timeout or a refused connection is a failed delivery that
the dispatcher retries with a growing pause; every attempt is signed anew (a fresh timestamp) and carries
the passage's `uid` (`X-Maskcam-Uid` and in the body), so a receiver drops what it has already.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from urllib.parse import urlsplit, urlunsplit

from server.events.messages import PassageEvent, Update
from server.events.signing import EVENT_HEADER, UID_HEADER, signed_headers
from server.events.sink import DeliveryError

TIMEOUT_S = 10.0
USER_AGENT = "maskcam-webhook/1"


def describe_url(url: str) -> str:
    """The URL without user info and query (either may hold a secret)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


class WebhookSink:
    def __init__(self, name: str, url: str, secret: str | None, timeout: float = TIMEOUT_S) -> None:
        self.name = name
        self.url = url
        self.description = describe_url(url)
        self._secret = secret
        self._timeout = timeout
        self._reachable = False

    @property
    def connected(self) -> bool:
        """Whether the last delivery was acknowledged (HTTP has no standing connection)."""
        return self._reachable

    def start(self) -> None:
        return None

    def stop(self) -> None:
        return None

    def add_location(self, location: str) -> None:
        return None

    def show(self, update: Update) -> None:
        """Webhooks receive passages only."""
        return None

    def deliver(self, event: PassageEvent) -> None:
        body = event.to_json().encode("utf-8")
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            UID_HEADER: event.uid,
            EVENT_HEADER: "passage",
            **signed_headers(self._secret, body),
        }
        request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            self._reachable = False
            raise DeliveryError(f"HTTP {exc.code}") from None
        except urllib.error.URLError as exc:  # refused, unreachable, a TLS failure
            self._reachable = False
            reason = exc.reason
            raise DeliveryError(getattr(reason, "strerror", None) or str(reason)) from None
        except (OSError, ValueError) as exc:  # a timeout, a connection reset
            self._reachable = False
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
        if not 200 <= status < 300:
            self._reachable = False
            raise DeliveryError(f"HTTP {status}")
        self._reachable = True
