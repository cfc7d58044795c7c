"""``kakin up``: the embedded default on one machine, for a person watching the Temporal UI.

Starts the Temporal dev server (with its Web UI) and localstripe as child processes,
runs the worker in this process, plays the demo (``kakin.dev.demo``) and prints where to
look. Ctrl-C or SIGTERM stops everything in order: demo, worker, children.

Test mode only: the stack talks to a Stripe emulator and the demo uses test clocks,
so a live Stripe key is refused before anything starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import sys
import traceback
from collections.abc import Awaitable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn

from api.app import build_app
from api.codec_server import build_codec_app
from kakin import runtime
from kakin.dev.demo import Demo
from kakin.dev.embedded import LOCALHOST, EmbeddedStack, port_is_open
from kakin.platform.codec import EncryptionKeyError, ensure_dev_key_file, keyring_from_settings
from kakin.platform.settings import ConfigurationError, Settings, get_settings
from kakin.platform.temporal_ui import ui_link
from kakin.runtime import run_worker
from kakin.views.webhook_events import event_data


def run_up(
    *,
    data_dir: Path,
    temporal_port: int = 7233,
    ui_port: int = 8233,
    stripe_port: int = 8420,
    api_port: int = 8000,
    demo: bool = True,
    exit_after_demo: bool = False,
) -> int:
    """Run the embedded stack until Ctrl-C/SIGTERM (or the demo's end); return the exit code.

    0: stopped on request or the demo played; 1: something failed; 2: refused (live key).
    """
    settings = get_settings()
    if settings.live_mode:
        print(
            "error: kakin up runs a test-mode stack (localstripe, test clocks) and refuses "
            "a live Stripe key; unset KAKIN_STRIPE_API_KEY or use an sk_test_ key",
            file=sys.stderr,
        )
        return 2
    data_dir = Path(data_dir).resolve()
    # An explicit KAKIN_DATABASE_URL (environment or .env) wins; otherwise a SQLite
    # file next to the other state, so one data dir is one installation.
    if "database_url" not in settings.model_fields_set:
        settings = settings.model_copy(
            update={"database_url": f"sqlite:///{data_dir / 'kakin.db'}"}
        )
    # The emails' card-update links point at the API this run serves.
    if "payment_update_url" not in settings.model_fields_set:
        settings = settings.model_copy(
            update={"payment_update_url": f"http://localhost:{api_port}/pay/update"}
        )
    if "billing_page_url" not in settings.model_fields_set:
        settings = settings.model_copy(
            update={"billing_page_url": f"http://localhost:{api_port}/billing"}
        )
    # Payloads are encrypted here too. Without configured keys, a development key is
    # kept next to the other state (created once, mode 0600): only this data dir's
    # Temporal payloads are readable with it.
    if not settings.encryption_keys.strip() and not settings.encryption_keys_file.strip():
        keys_file = ensure_dev_key_file(data_dir / "encryption.keys")
        settings = settings.model_copy(update={"encryption_keys_file": str(keys_file)})
    # The console's cookies are signed with a secret of this data dir (made once, mode
    # 0600) rather than the embedded default that anyone can read in the source.
    if "console_secret" not in settings.model_fields_set:
        secret = ensure_secret_file(data_dir / "console.secret")
        settings = settings.model_copy(update={"console_secret": secret})
    try:
        keyring_from_settings(settings)
        # What the worker builds from the settings, checked before anything starts: a
        # refusal here is one line and exit 2, not a failed worker task after the stack is up.
        runtime.seller(settings)
        runtime.mailer(settings)
    except (EncryptionKeyError, ConfigurationError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    # The Web UI decrypts through the codec endpoint mounted on the API port.
    codec_endpoint = f"http://localhost:{api_port}/codec"
    try:
        return asyncio.run(
            _up(
                settings,
                EmbeddedStack(
                    data_dir, temporal_port, ui_port, stripe_port, ui_codec_endpoint=codec_endpoint
                ),
                api_port=api_port,
                demo=demo,
                exit_after_demo=exit_after_demo,
            )
        )
    except KeyboardInterrupt:  # only before our handlers are installed: nothing runs yet
        return 0


def ensure_secret_file(path: Path) -> str:
    """The secret kept in ``path``, created first (random, mode 0600) if missing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_EXCL: two processes starting at once never overwrite each other's secret.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text(encoding="utf-8").strip()
    secret = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(f"{secret}\n")
    return secret


class _ApiServer(uvicorn.Server):
    """uvicorn without its own signal handling: ``kakin up`` owns Ctrl-C and SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class _Running:
    """What ``kakin up`` has started so far, so that stopping ends just that, in order."""

    worker_stop: asyncio.Event = field(default_factory=asyncio.Event)
    worker: asyncio.Task[None] | None = None
    api: _ApiServer | None = None
    serving: asyncio.Task[None] | None = None
    player: Demo | None = None
    playing: asyncio.Task[object] | None = None

    async def stop(self) -> None:
        # In order: the demo stops narrating and ends its subscriptions while the
        # worker still runs, then the API, then the worker finishes its activities.
        if self.playing is not None:
            self.playing.cancel()
            with contextlib.suppress(BaseException):
                await self.playing
        if self.player is not None and self.worker is not None and not self.worker.done():
            try:
                await asyncio.wait_for(self.player.end(), timeout=10)
            except Exception as error:  # shutting down anyway; say why it was not clean
                print(f"kakin up: could not end the demo subscriptions: {error}", flush=True)
        if self.api is not None and self.serving is not None:
            self.api.should_exit = True
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(self.serving, timeout=10)
        self.worker_stop.set()
        if self.worker is not None:
            with contextlib.suppress(BaseException):
                await self.worker


async def _up(
    settings: Settings,
    stack: EmbeddedStack,
    *,
    api_port: int,
    demo: bool,
    exit_after_demo: bool,
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    running = _Running()
    try:
        code = await _start_stack(settings, stack, stop, api_port=api_port)
        if code is not None:
            return code
        settings = _on_stack(settings, stack)
        client = await runtime.temporal_client(settings)
        running.worker = asyncio.create_task(
            run_worker(settings, client=client, stop=running.worker_stop, shape_event=event_data)
        )
        running.api = _api_server(settings, api_port)
        running.serving = asyncio.create_task(running.api.serve())
        print(_where_to_look(settings, stack), flush=True)
        print(
            f"  HTTP API        http://localhost:{api_port}/docs  "
            "(create a key: kakin keys create --name you --role admin)",
            flush=True,
        )
        print(
            f"  staff console   http://localhost:{api_port}/console/  "
            "(first admin: kakin staff create --email you@example.com --name You --role admin)",
            flush=True,
        )
        if demo:
            running.player = Demo(settings, client)
            running.playing = asyncio.create_task(
                running.player.play(keep_watching=not exit_after_demo)
            )
        return await _supervise(
            stop, stack, running.worker, running.playing, exit_after_demo=exit_after_demo
        )
    finally:
        # The demo, the API and the worker first; then the children they talk to.
        await running.stop()
        await stack.stop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
        print("kakin up: stopped", flush=True)


async def _start_stack(
    settings: Settings, stack: EmbeddedStack, stop: asyncio.Event, *, api_port: int
) -> int | None:
    """Migrate the database and start Temporal and localstripe; None when all is up,
    else the exit status (0: stopped by a signal meanwhile, 1: it could not start)."""
    stack.data_dir.mkdir(parents=True, exist_ok=True)  # the SQLite file lives there
    print(f"kakin up: migrating {settings.database_url}", flush=True)
    if not await _unless(stop, asyncio.to_thread(runtime.migrate_database, settings.database_url)):
        return 0
    if port_is_open(LOCALHOST, api_port):
        print(
            f"error: port {api_port} is already in use; pick another with --api-port",
            file=sys.stderr, flush=True,
        )  # fmt: skip
        return 1
    print(f"kakin up: starting Temporal and localstripe (logs in {stack.log_dir})", flush=True)
    try:
        if not await _unless(stop, stack.start()):
            return 0
    except (RuntimeError, TimeoutError, FileNotFoundError) as error:
        # A busy port, a missing binary, a child that would not start: the
        # message says which and what to do; a traceback would only bury it.
        print(f"error: {error}", file=sys.stderr, flush=True)
        return 1
    return None


def _on_stack(settings: Settings, stack: EmbeddedStack) -> Settings:
    """The settings pointed at the embedded Temporal, UI, Stripe emulator and outbox."""
    return settings.model_copy(
        update={
            "temporal_address": stack.temporal_address,
            "temporal_ui_url": stack.ui_url,
            "stripe_api_base": stack.stripe_api_base,
            "stripe_confirm_off_session": False,  # localstripe rejects the parameter
            "outbox_dir": stack.data_dir / "outbox",
        }
    )


def _api_server(settings: Settings, api_port: int) -> _ApiServer:
    """The HTTP API with the codec endpoint mounted (the UI's --ui-codec-endpoint)."""
    app = build_app(settings)
    app.mount("/codec", build_codec_app(settings))
    return _ApiServer(
        uvicorn.Config(
            app, host=LOCALHOST, port=api_port, lifespan="off",
            **runtime.uvicorn_options(log_level="warning"),
        )
    )  # fmt: skip


async def _unless(stop: asyncio.Event, step: Awaitable[object]) -> bool:
    """Await ``step`` unless ``stop`` is set first (then cancel it); True if it finished."""
    task = asyncio.ensure_future(step)
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait({task, stopped}, return_when=asyncio.FIRST_COMPLETED)
    stopped.cancel()
    if task.done():
        task.result()  # its error, if any, is the run's error
        return True
    task.cancel()
    with contextlib.suppress(BaseException):  # we are stopping; how it ended no longer matters
        await task
    return False


async def _supervise(
    stop: asyncio.Event,
    stack: EmbeddedStack,
    worker: asyncio.Task[None],
    playing: asyncio.Task[object] | None,
    *,
    exit_after_demo: bool,
) -> int:
    """Wait for a stop request; return early (1) if the worker, a child or the demo fails."""
    while not stop.is_set():
        if worker.done():
            _report("the worker stopped", worker)
            return 1
        for process in stack.processes:
            if not process.is_running():
                print(
                    f"kakin up: {process.name} exited with code {process.returncode}; "
                    f"last lines of {process.log_path}:\n{process.log_tail()}",
                    file=sys.stderr,
                    flush=True,
                )
                return 1
        if playing is None and exit_after_demo:
            return 0  # --no-demo --exit-after-demo: nothing to play, a start-and-stop check
        if playing is not None and playing.done():
            if playing.cancelled() or playing.exception() is not None:
                _report("the demo failed", playing)
                return 1
            if exit_after_demo:
                return 0
            playing = None  # played; keep the stack running until Ctrl-C
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=1.0)
    return 0


def _report(what: str, task: asyncio.Task[object] | asyncio.Task[None]) -> None:
    error = None if task.cancelled() else task.exception()
    detail = "".join(traceback.format_exception(error)) if error else "(no error)"
    print(f"kakin up: {what}: {detail}", file=sys.stderr, flush=True)


def _where_to_look(settings: Settings, stack: EmbeddedStack) -> str:
    ns = settings.temporal_namespace
    address = settings.temporal_address
    here = Path.cwd()

    def running(status: str) -> str:
        # Closed continued-as-new runs keep their attributes: list live ones only.
        return f'SubscriptionStatus="{status}" AND ExecutionStatus="Running"'

    def shown(path: Path) -> str:
        return str(path.relative_to(here)) if path.is_relative_to(here) else str(path)

    # Every Temporal client needs the payload keys (kakin/codec.py).
    keys = (
        f"\n  export KAKIN_ENCRYPTION_KEYS_FILE={settings.encryption_keys_file}"
        if settings.encryption_keys_file
        else ""
    )

    return f"""
kakin is up (test mode: localstripe, test clocks). Where to look:
  Temporal UI     {ui_link(stack.ui_url, ns)}
    past due      {ui_link(stack.ui_url, ns, query=running("past_due"))}
    suspended     {ui_link(stack.ui_url, ns, query=running("suspended"))}
  outbox          {shown(settings.outbox_dir)}/  (one .eml and .html per email)
  database        {settings.database_url}
  logs            {shown(stack.log_dir)}/  (temporal.log, localstripe.log)
  Temporal        {address}, namespace {ns}, task queue {settings.task_queue}
  payload keys    {settings.encryption_keys_file or "KAKIN_ENCRYPTION_KEYS"} (AES-GCM)
    UI decryption {stack.ui_codec_endpoint}/login  (a support or admin API key)
  Stripe          {stack.stripe_api_base} (localstripe)
From another terminal:{keys}
  kakin --temporal-address {address} status <sub id>
  python starter.py --temporal-address {address} cancel <sub id> \\
      --reason "..." --requested-by support:you
  for start / update-card, first:
  export KAKIN_DATABASE_URL={settings.database_url} \\
      KAKIN_STRIPE_API_BASE={stack.stripe_api_base} KAKIN_STRIPE_CONFIRM_OFF_SESSION=false
Ctrl-C stops everything.
"""
