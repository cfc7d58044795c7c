"""``kakin up|worker|migrate|api|codec-server|encryption-key``: running kakin's processes."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from kakin import runtime
from kakin.platform.codec import new_key_entry
from kakin.platform.settings import get_settings


def _migrate(_: argparse.Namespace) -> int:
    url = get_settings().database_url
    runtime.migrate_database(url)
    print(f"database at {url} is at the newest revision")
    return 0


def _worker(args: argparse.Namespace) -> int:
    # The connection options, before or after `worker`, become python worker.py's.
    options = {"--temporal-address": args.temporal_address, "--namespace": args.namespace,
               "--task-queue": args.task_queue}  # fmt: skip
    from kakin.views.webhook_events import event_data  # outgoing webhooks' bodies

    return runtime.worker_main(
        [part for name, value in options.items() if value for part in (name, value)],
        shape_event=event_data,
    )


def _up(args: argparse.Namespace) -> int:
    # Imported when run, to keep every other command's startup fast: kakin.dev.up
    # loads the API, the codec server and the demo, which no other command needs.
    from kakin.dev.up import run_up

    return run_up(
        data_dir=args.data_dir,
        temporal_port=args.temporal_port,
        ui_port=args.ui_port,
        stripe_port=args.stripe_port,
        api_port=args.api_port,
        demo=not args.no_demo,
        exit_after_demo=args.exit_after_demo,
    )


def _api(args: argparse.Namespace) -> int:
    # Imported when run: the FastAPI app is heavy and only `kakin api` serves it.
    from api.app import build_app

    settings = runtime.settings_from(args)  # the API signals and queries Temporal too
    runtime.serve_http(build_app(settings), host=args.host, port=args.port)
    return 0


def _codec_server(args: argparse.Namespace) -> int:
    # Imported when run: only `kakin codec-server` serves the codec app.
    from api.codec_server import build_codec_app

    runtime.serve_http(build_codec_app(get_settings()), host=args.host, port=args.port)
    return 0


def _encryption_key(args: argparse.Namespace) -> int:
    print(new_key_entry(args.id))
    return 0


def add_commands(commands: Any) -> None:
    """up, worker and migrate (registered first, as ``kakin --help`` lists them)."""
    up = commands.add_parser("up", help="run the embedded stack and play the demo")
    up.add_argument("--data-dir", type=Path, default=Path("var"))
    up.add_argument("--temporal-port", type=int, default=7233)
    up.add_argument("--ui-port", type=int, default=8233)
    up.add_argument("--stripe-port", type=int, default=8420)
    up.add_argument("--api-port", type=int, default=8000, help="the HTTP API and card-update page")
    up.add_argument("--no-demo", action="store_true", help="start everything, play nothing")
    up.add_argument("--exit-after-demo", action="store_true", help="stop when the demo has played")
    up.set_defaults(handler=_up)

    worker = commands.add_parser("worker", help="run a worker")
    runtime.add_connection_options(worker, after_command=True)
    worker.set_defaults(handler=_worker)
    commands.add_parser("migrate", help="migrate the database").set_defaults(handler=_migrate)


def add_http_commands(commands: Any) -> None:
    """api, codec-server and encryption-key."""
    api = commands.add_parser("api", help="run the HTTP API")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    runtime.add_connection_options(api, after_command=True)
    api.set_defaults(handler=_api)

    codec_server = commands.add_parser(
        "codec-server", help="decrypt payloads for the Temporal UI (support and admin keys)"
    )
    codec_server.add_argument("--host", default="127.0.0.1")
    codec_server.add_argument("--port", type=int, default=8081)
    codec_server.set_defaults(handler=_codec_server)
    encryption_key = commands.add_parser(
        "encryption-key", help="print a new payload-encryption key entry (id:base64)"
    )
    encryption_key.add_argument("--id", help="the key id (default: k<date>-<random>)")
    encryption_key.set_defaults(handler=_encryption_key)
