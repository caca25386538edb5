"""The ``synclass`` command: serve, demo, bench."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import ssl
import sys
from pathlib import Path
from typing import Any


def _serve(args: argparse.Namespace) -> int:
    from aiohttp import web

    from server.settings import ensure_secrets, load_settings

    from .app import build_app
    from .tls import ensure_self_signed

    overrides: dict[str, Any] = {}
    for name in ("host", "port", "data_dir", "tls_cert", "tls_key"):
        value = getattr(args, name)
        if value is not None:
            overrides[name] = value
    if args.tls_self_signed:
        overrides["tls_self_signed"] = True
    if args.ice_address:
        overrides["ice_host_addresses"] = tuple(args.ice_address)
    try:
        settings = ensure_secrets(load_settings(args.config, os.environ, **overrides))
    except ValueError as exc:
        print(f"synclass: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=getattr(logging, settings.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    ssl_context = None
    if settings.tls_self_signed and not settings.tls_cert:
        cert, key = ensure_self_signed(settings.data_dir / "tls")
        settings = dataclasses.replace(settings, tls_cert=cert, tls_key=key)
    if settings.tls_cert:
        ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ssl_context.load_cert_chain(str(settings.tls_cert), str(settings.tls_key))
    scheme = "https" if ssl_context else "http"
    base = settings.public_url or f"{scheme}://{settings.host}:{settings.port}"
    print(f"synclass serving on {scheme}://{settings.host}:{settings.port}", flush=True)
    print(f"admin page: {base}/web/admin.html  (admin key in {settings.data_dir / 'admin_key'} "
          "unless SYNCLASS_ADMIN_KEY is set)", flush=True)
    app = build_app(settings)
    web.run_app(app, host=settings.host, port=settings.port, ssl_context=ssl_context, print=None,
                access_log=None, shutdown_timeout=5.0)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from .demo import main

    return main(args)


def _bench(args: argparse.Namespace, rest: list[str]) -> int:
    if args.what == "fanout":
        from .bench.fanout import main

        return int(main(rest))
    if args.what == "link":
        from .bench.link import main as link_main

        return int(link_main(rest))
    print(f"synclass bench: unknown benchmark {args.what!r}", file=sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="synclass", description="synchronous-classroom streaming server")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the server (signaling API, SFU, pages)")
    serve.add_argument("--config", type=Path, default=None, help="settings file (TOML), e.g. config/synclass.toml")
    serve.add_argument("--host", default=None)
    serve.add_argument("--port", type=int, default=None)
    serve.add_argument("--data-dir", dest="data_dir", type=Path, default=None)
    serve.add_argument("--tls-cert", dest="tls_cert", type=Path, default=None)
    serve.add_argument("--tls-key", dest="tls_key", type=Path, default=None)
    serve.add_argument("--tls-self-signed", action="store_true",
                       help="serve https with a generated certificate (trials on a LAN)")
    serve.add_argument("--ice-address", action="append", default=None,
                       help="gather ICE candidates only on this address (repeatable)")

    from .demo import add_arguments

    demo = sub.add_parser("demo", help="a whole synthetic lesson on this machine")
    add_arguments(demo)

    bench = sub.add_parser("bench", help="benchmarks (print JSON)")
    bench.add_argument("what", choices=["fanout", "link"])
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv and argv[0] == "bench":
        args, rest = parser.parse_known_args(argv)
        return _bench(args, rest)
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "demo":
        return _demo(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
