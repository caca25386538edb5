"""The ``synclass`` command: serve, demo, export, bench."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import signal
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
    for name in settings.debug_loggers:
        logging.getLogger(name).setLevel(logging.DEBUG)
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


def _export(args: argparse.Namespace) -> int:
    import av

    from .export import ExportError, export_lesson, find_lesson

    data_dir = args.data_dir if args.data_dir is not None else Path("data")
    recordings_dir = args.recordings_dir if args.recordings_dir is not None else data_dir / "recordings"
    mode = args.progress or ("bar" if sys.stderr.isatty() else "none")
    logging.basicConfig(level=logging.WARNING, format="synclass export warning: %(message)s")
    # a cancelled job (SIGTERM) unwinds, so the partial file is removed
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    def json_progress(share: float) -> None:
        print(json.dumps({"progress": share}), flush=True)

    def bar_progress(share: float) -> None:
        filled = int(share * 30)
        print(f"\rexporting [{'#' * filled}{'.' * (30 - filled)}] {share:4.0%}", end="", file=sys.stderr, flush=True)

    progress = {"json": json_progress, "bar": bar_progress}.get(mode)
    try:
        lesson_dir = find_lesson(args.lesson, recordings_dir)
        result = export_lesson(lesson_dir, args.out, progress)
    except (ExportError, OSError, av.FFmpegError) as exc:
        if mode == "bar":
            print(file=sys.stderr)
        print(f"synclass export: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nsynclass export: interrupted", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    if mode == "bar":
        print(f"\nsynclass export: {result['out']} ({result['duration_s']:.1f} s)", file=sys.stderr)
    elif mode == "json":
        print(json.dumps({"done": True, **result}), flush=True)
    return 0


def _bench(args: argparse.Namespace, rest: list[str]) -> int:
    if args.what == "fanout":
        from .bench.fanout import main

        return int(main(rest))
    if args.what == "link":
        from .bench.link import main as link_main

        return int(link_main(rest))
    if args.what == "record":
        from .bench.record import main as record_main

        return int(record_main(rest))
    if args.what == "export":
        from .bench.export import main as export_main

        return int(export_main(rest))
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

    export = sub.add_parser("export", help="compose a recorded lesson into one MP4 file")
    export.add_argument("lesson", metavar="LESSON",
                        help="a session id (looked up in the recordings dir), a lesson directory or its manifest.json")
    export.add_argument("--out", type=Path, required=True, help="the MP4 to write (replaced if it exists)")
    export.add_argument("--data-dir", dest="data_dir", type=Path, default=None, help="default: ./data")
    export.add_argument("--recordings-dir", dest="recordings_dir", type=Path, default=None,
                        help="default: DATA_DIR/recordings")
    export.add_argument("--progress", choices=["bar", "json", "none"], default=None,
                        help="bar on stderr (default on a terminal), JSON lines on stdout, or none")

    bench = sub.add_parser("bench", help="benchmarks (print JSON)")
    bench.add_argument("what", choices=["fanout", "link", "record", "export"])
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if argv and argv[0] == "bench":
        # the benchmark parses its own options (so `bench export --help` is the benchmark's help)
        args, rest = parser.parse_known_args(argv[:2])
        return _bench(args, rest + argv[2:])
    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "demo":
        return _demo(args)
    if args.command == "export":
        return _export(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
