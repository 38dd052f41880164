"""Start the face-mask detection server: `python run_server.py --help` lists every setting.

Loads the models first (a missing file is a clear message and exit code 2), serves HTTP or HTTPS, prints
the addresses to open, and on SIGTERM/SIGINT closes every peer and exits within 5 seconds.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import signal
import ssl
import sys
from collections.abc import Sequence

import psutil
from aiohttp import web

from server.analysis.process import AnalysisProcess, AnalysisProcessError
from server.app import create_app
from server.history.store import HistoryError
from server.logs import configure_logging
from server.memory import use_fixed_mmap_threshold
from server.settings import ServerConfig, parse_config
from server.tls import ensure_self_signed, server_ssl_context

logger = logging.getLogger("run_server")

EXIT_MODEL_MISSING = 2
EXIT_CANNOT_BIND = 3
EXIT_BAD_TLS = 4
EXIT_BAD_HISTORY = 5
# Stop within 5 s of SIGTERM: peers get this long to close, the rest is for the worker and the process.
SHUTDOWN_BUDGET_S = 4.0
WILDCARD_HOSTS = ("0.0.0.0", "", "::")


def lan_addresses() -> list[str]:
    """This machine's IPv4 addresses other than loopback, for the URLs to open from other devices."""
    addresses = []
    for entries in psutil.net_if_addrs().values():
        for entry in entries:
            if entry.family.name == "AF_INET" and not entry.address.startswith("127."):
                addresses.append(entry.address)
    return sorted(set(addresses))


def urls_to_open(config: ServerConfig, port: int) -> list[str]:
    scheme = "https" if config.https else "http"
    if config.host in WILDCARD_HOSTS:
        hosts = ["localhost", *lan_addresses()]
    elif config.host in ("127.0.0.1", "::1"):
        hosts = ["localhost"]
    else:
        hosts = [config.host]
    query = f"?token={config.token}" if config.token else ""
    return [f"{scheme}://{host}:{port}/{query}" for host in hosts]


def print_banner(config: ServerConfig, port: int) -> None:
    lines = ["", "Face-mask detection server is running. Open one of:"]
    dashboard_query = f"?token={config.admin_token}" if config.admin_token else ""
    for url in urls_to_open(config, port):
        base, _, query = url.partition("?")
        suffix = f"?{query}" if query else ""
        lines.append(f"  {url}    kiosk: {base}kiosk{suffix}    dashboard: {base}dashboard{dashboard_query}")
    if not config.admin_token:
        lines.append("The dashboard opens on this machine only (no --admin-token).")
    if not config.https and config.host not in ("127.0.0.1", "::1", "localhost"):
        lines.append("Phones and other machines need --https for the camera (or the page shows why not).")
    lines.append("Stop with Ctrl+C.")
    print("\n".join(lines), flush=True)


async def serve(config: ServerConfig, app: web.Application, ssl_context: ssl.SSLContext | None) -> int:
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    try:
        await runner.setup()
    except HistoryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        await runner.cleanup()
        return EXIT_BAD_HISTORY
    site = web.TCPSite(
        runner, config.host, config.port, ssl_context=ssl_context, shutdown_timeout=SHUTDOWN_BUDGET_S / 2
    )
    try:
        await site.start()
    except OSError as exc:
        print(f"error: cannot listen on {config.host}:{config.port}: {exc.strerror or exc}", file=sys.stderr)
        await runner.cleanup()
        return EXIT_CANNOT_BIND
    port = runner.addresses[0][1] if runner.addresses else config.port
    print_banner(config, port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    logger.info("stopping: closing every session")
    try:
        await asyncio.wait_for(runner.cleanup(), SHUTDOWN_BUDGET_S)
    except TimeoutError:
        logger.warning("shutdown took longer than %.0f s; exiting anyway", SHUTDOWN_BUDGET_S)
    return 0


def start_analysis_processes(config: ServerConfig) -> list[AnalysisProcess]:
    """Start the `--analysis-processes` children side by side (each loads the models) before serving, so
    that a missing model file is an exit code; AnalysisProcessError (the others closed) if one fails."""
    with concurrent.futures.ThreadPoolExecutor(config.analysis_processes) as pool:
        futures = [pool.submit(AnalysisProcess, config) for _ in range(config.analysis_processes)]
        concurrent.futures.wait(futures)
    errors = [error for future in futures if (error := future.exception()) is not None]
    if errors:
        for future in futures:
            if future.exception() is None:
                future.result().close()
        raise errors[0]
    return [future.result() for future in futures]


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_config(argv)
    configure_logging(config.log_format, config.log_level)
    use_fixed_mmap_threshold()
    try:
        processes = start_analysis_processes(config)
    except AnalysisProcessError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(
            "The server needs the face detector (--detector yunet: the yuface wheel, CPython <= 3.11 on\n"
            "x86_64; --detector res10: the packaged res10 SSD, or --prototxt/--caffemodel) and the mask\n"
            "classifier (--classifier, default models/mask_classifier.onnx; the README says how to train\n"
            "it).",
            file=sys.stderr,
        )
        return EXIT_MODEL_MISSING
    ssl_context = None
    if config.https:
        try:
            done = ensure_self_signed(config.cert, config.key, lan_addresses())
            if done:
                print(done, flush=True)
            ssl_context = server_ssl_context(config.cert, config.key)
        except (OSError, ValueError, ssl.SSLError) as exc:
            print(f"error: cannot use the TLS files {config.cert} / {config.key}: {exc}", file=sys.stderr)
            return EXIT_BAD_TLS
    started = iter(processes)
    app = create_app(config, source_factory=lambda _: next(started))
    return asyncio.run(serve(config, app, ssl_context))


if __name__ == "__main__":
    sys.exit(main())
