"""Container health check: exit 0 when the server's /healthz answers 200, else 1.

The slim image has no curl; this uses only the standard library. It reads the same MASKCAM_ variables
as the server, so it follows --port/--https, and it accepts the self-signed certificate of --https
(it checks the server's own loopback address, not an identity).
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping

_ENV_TRUE = {"1", "true", "yes", "on"}
_WILDCARD_HOSTS = {"", "0.0.0.0", "::"}


def healthz_url(environ: Mapping[str, str]) -> str:
    scheme = "https" if environ.get("MASKCAM_HTTPS", "").strip().lower() in _ENV_TRUE else "http"
    host = environ.get("MASKCAM_HOST", "127.0.0.1").strip()
    if host in _WILDCARD_HOSTS:
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    port = environ.get("MASKCAM_PORT", "8080").strip()
    return f"{scheme}://{host}:{port}/healthz"


def check(url: str, timeout: float = 3.0) -> bool:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def main() -> int:
    url = healthz_url(os.environ)
    healthy = check(url)
    if not healthy:
        print(f"unhealthy: {url}", file=sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())
