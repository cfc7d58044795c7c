"""Figure 2: what a billing cycle costs on Temporal Cloud, from recorded histories.

Billable actions are counted as Temporal Cloud defines them
(https://docs.temporal.io/cloud/actions): a workflow start (client start,
continue-as-new, child workflow), every activity attempt (start or retry), every
timer started (including the implicit timer of ``wait_condition(timeout=...)``),
every UpsertWorkflowSearchAttributes command (search attributes given at start or
at continue-as-new are free), every signal, query, update, side effect/marker, and
heartbeats that reach the server. Queries, rejected updates and heartbeats leave no
event in the history; in the ``.v1`` histories the charge activity's one heartbeat per
attempt is added as an estimate and shown on its own line (today's activities send
no heartbeat).

The histories are kakin's recorded ones (tests/histories, one file per run). A cycle
is one wake-up of the renewal timer and what it leads to, up to the next timer: a
subscription's runs are read as one sequence of events cut at each ``TimerFired``
(``cycles``), so a continue-as-new and the next run's start count in the renewal
that ends a run. The workflow used to continue as new after every renewal (one run =
one cycle, the ``.v1``-``.v3`` histories); since ``run-of-renewals`` a run holds
twelve. The baseline is a fresh bare cycle (one timer, one no-op activity) run on a
dev server now.

Recorded histories have no webhooks, so a production renewal is also measured: one
subscription renews on a test clock while localstripe sends its signed webhooks to
kakin's API (as Stripe does: ``payment_intent.succeeded`` a second after each charge),
and its runs are counted the same way, with whatever signals the webhooks caused.
"""

from __future__ import annotations

import asyncio
import re
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import History, HistoryEvent
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHistory

from bench import stack
from bench.common import (
    Figure,
    Report,
    dev_server,
    free_ports,
    localstripe,
    postgres_database,
    progress,
    temp_dir,
)

HISTORIES = Path(__file__).resolve().parent.parent / "tests" / "histories"
GOAL_HAPPY = 5
GOAL_DUNNED = 25
GOAL_BYTES = 4096
# Histories recorded before the last patched changes, compared with the current ones:
# .v3 before run-of-renewals (continue-as-new at every renewal, issue and charge apart),
# .v1 before compact-cycle.
PREVIOUS = (".v3", ".v1")
# The activities that start billing a period: one per cycle that bills.
ISSUING = {"create_invoice", "issue_invoice", "issue_and_charge_invoice"}

# Heartbeats per attempt, by activity, of the code that recorded each set of histories:
# charge_invoice heartbeated once per attempt until commit af2549e; none do today.
HEARTBEATS_BY_VERSION: dict[str, dict[str, int]] = {".v1": {"charge_invoice": 1}}

E = EventType


@dataclass
class Cost:
    """Billable actions by kind, events and bytes of one or more runs."""

    actions: Counter[str] = field(default_factory=Counter)
    activities: Counter[str] = field(default_factory=Counter)  # attempts by activity type
    events: int = 0
    bytes: int = 0
    bytes_by_event: Counter[str] = field(default_factory=Counter)
    # Of ``bytes``: what payload encryption adds (key id, nonce, tag, inner envelope).
    encryption_bytes: int = 0
    runs: int = 0
    # Paid once per subscription, not per cycle (left out of ``actions``).
    once: Counter[str] = field(default_factory=Counter)
    # In the history but not billed (patch markers and their TemporalChangeVersion).
    free: Counter[str] = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.actions.values())

    def __add__(self, other: Cost) -> Cost:
        return Cost(
            self.actions + other.actions,
            self.activities + other.activities,
            self.events + other.events,
            self.bytes + other.bytes,
            self.bytes_by_event + other.bytes_by_event,
            self.encryption_bytes + other.encryption_bytes,
            self.runs + other.runs,
            self.once + other.once,
            self.free + other.free,
        )

    def per_run(self) -> dict[str, Any]:
        n = max(self.runs, 1)
        return {
            "runs": self.runs,
            "actions": self.total / n,
            "actions_by_kind": {k: v / n for k, v in sorted(self.actions.items())},
            "activity_attempts_by_type": {k: v / n for k, v in sorted(self.activities.items())},
            "once_per_subscription": dict(self.once),
            "not_billed": {k: v / n for k, v in self.free.items()},
            "events": self.events / n,
            "history_bytes": self.bytes / n,
            "history_bytes_of_encryption": self.encryption_bytes / n,
            "history_bytes_by_event": {
                k: round(v / n) for k, v in self.bytes_by_event.most_common()
            },
        }


def _short(event_type: int) -> str:
    return EventType.Name(event_type).removeprefix("EVENT_TYPE_")  # type: ignore[arg-type]


def cost_of_run(
    events: Sequence[HistoryEvent], *, first_run: bool = False, version: str = ""
) -> Cost:
    """Count one run's billable actions. ``first_run``: its creation upsert is left out
    (it is paid once per subscription, not per cycle) and reported as ``once``."""
    heartbeats = HEARTBEATS_BY_VERSION.get(version, {})
    cost = Cost(runs=1, events=len(events), bytes=History(events=events).ByteSize())
    activity_types: dict[int, str] = {}
    seen_timer_or_activity = False
    for event in events:
        kind = event.event_type
        cost.bytes_by_event[_short(kind)] += event.ByteSize()
        cost.encryption_bytes += _encryption_overhead(event)
        if kind == E.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            cost.actions["workflow started (start or continue-as-new)"] += 1
        elif kind == E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            activity_types[event.event_id] = name
            seen_timer_or_activity = True
        elif kind == E.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            attrs = event.activity_task_started_event_attributes
            name = activity_types.get(attrs.scheduled_event_id, "?")
            attempts = max(attrs.attempt, 1)
            cost.actions["activity attempts"] += attempts
            cost.activities[name] += attempts
            if name in heartbeats:
                cost.actions["heartbeats (estimated, not in history)"] += (
                    attempts * heartbeats[name]
                )
        elif kind == E.EVENT_TYPE_TIMER_STARTED:
            cost.actions["timers started"] += 1
            seen_timer_or_activity = True
        elif kind == E.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes
            if set(fields.indexed_fields) <= {"TemporalChangeVersion"}:
                cost.free["TemporalChangeVersion upsert (workflow.patched)"] += 1
            elif first_run and not seen_timer_or_activity:
                cost.once["search attribute upsert at creation"] += 1
            else:
                cost.actions["search attribute upserts"] += 1
        elif kind == E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            cost.actions["signals"] += 1
        elif kind == E.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            cost.actions["updates"] += 1
        elif kind == E.EVENT_TYPE_MARKER_RECORDED:
            marker = event.marker_recorded_event_attributes.marker_name
            if marker == "core_patch":
                cost.free["patch markers (workflow.patched)"] += 1
            else:
                cost.actions["markers (local activities, side effects)"] += 1
        elif kind == E.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            cost.actions["child workflows started"] += 1
        elif kind == E.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
            cost.actions["signals"] += 1
    return cost


def _payloads(message: Message) -> Iterator[Payload]:
    """Every Payload inside a protobuf message (inputs, results, summaries, headers)."""
    if isinstance(message, Payload):
        yield message
        return
    for descriptor, value in message.ListFields():
        if descriptor.message_type is None:
            continue
        if descriptor.message_type.GetOptions().map_entry:
            values = list(value.values())
        elif descriptor.is_repeated:
            values = list(value)
        else:
            values = [value]
        for item in values:
            if isinstance(item, Message):
                yield from _payloads(item)


def _encryption_overhead(event: HistoryEvent) -> int:
    """Bytes the encryption codec adds to this event's payloads: each encrypted payload
    holds the original serialized payload plus a 12-byte nonce, a 16-byte tag and its
    own metadata (encoding and key id)."""
    return sum(
        p.ByteSize() - (len(p.data) - 28)
        for p in _payloads(event)
        if p.metadata.get("encoding") == b"binary/encrypted"
    )


def _runs(scenario: str, version: str = "") -> list[Path]:
    """The runs of ``scenario`` in order; ``version`` ".v1" picks histories recorded
    before a patched workflow change (kept beside the current ones for replay)."""

    def number(path: Path) -> int:
        match = re.search(r"\.run(\d+)\.json$", path.name)
        return int(match.group(1)) if match else 0

    return sorted(HISTORIES.glob(f"{scenario}{version}.run*.json"), key=number)


def _events(path: Path) -> list[HistoryEvent]:
    return list(WorkflowHistory.from_json("bench", path.read_text()).events)


def _closed(events: Sequence[HistoryEvent]) -> bool:
    """The workflow ended in these events (a continue-as-new ends a run, not it)."""
    return any(
        event.event_type
        in (
            E.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED,
            E.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED,
            E.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED,
            E.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED,
        )
        for event in events
    )


def cycles(runs: Sequence[Sequence[HistoryEvent]]) -> list[list[HistoryEvent]]:
    """A subscription's runs (oldest first) as one sequence of events, cut before each
    ``TimerFired``: piece 0 is what came before the first timer fired, each later piece
    one wake-up and all it did until the next one (a continue-as-new and the next run's
    first events fall in the piece of the renewal that ended the run)."""
    pieces: list[list[HistoryEvent]] = [[]]
    for events in runs:
        for event in events:
            if event.event_type == E.EVENT_TYPE_TIMER_FIRED:
                pieces.append([])
            pieces[-1].append(event)
    return pieces


def _bills(events: Sequence[HistoryEvent]) -> bool:
    return any(
        event.activity_task_scheduled_event_attributes.activity_type.name in ISSUING
        for event in events
        if event.event_type == E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
    )


def renewal_cycles(runs: Sequence[Sequence[HistoryEvent]], version: str = "") -> tuple[Cost, Cost]:
    """(the steady renewals, the first cycle) of one subscription's runs. Steady: every
    cycle after the first that billed a period, except one the workflow ended in (a
    cancellation's steps are not a renewal's); ``runs`` of the result counts them."""
    pieces = cycles(runs)
    first = cost_of_run([*pieces[0], *pieces[1]], first_run=True, version=version)
    steady = Cost()
    for piece in pieces[2:]:
        if _bills(piece) and not _closed(piece):
            steady = steady + cost_of_run(piece, version=version)
    return steady, first


def happy_path(version: str = "") -> tuple[Cost, Cost]:
    """(a steady renewal, the first cycle) of the recorded ``renewals`` scenario."""
    return renewal_cycles([_events(p) for p in _runs("renewals", version)], version)


def fully_dunned(version: str = "") -> Cost:
    """``dunning_to_cancel``: the cycle whose charge is declined, then the whole ladder
    (retries, reminders, suspension) to cancellation, all its runs together."""
    paths = _runs("dunning_to_cancel", version)
    total = Cost()
    for i, path in enumerate(paths):
        total = total + cost_of_run(_events(path), first_run=i == 0, version=version)
    total.runs = 1  # one cycle spread over its runs
    return total


def scenarios() -> dict[str, dict[str, Any]]:
    """Every recorded scenario, summed over its runs (for the details)."""
    names = sorted({p.name.split(".")[0] for p in HISTORIES.glob("*.run*.json")})
    out = {}
    for name in names:
        total = Cost()
        for i, path in enumerate(_runs(name)):
            total = total + cost_of_run(_events(path), first_run=i == 0)
        runs = total.runs
        total.runs = 1
        out[name] = {**total.per_run(), "runs": runs}
    return out


async def bare_cycle() -> Cost:
    """Run one bare cycle on a fresh dev server and count its history the same way."""
    with temp_dir("cost") as work:
        async with dev_server(work) as server:
            queue = f"bench-cost-{secrets.token_hex(3)}"
            async with stack.bare_worker(server.client, queue):
                due = stack.due_after(1)
                handle = await server.client.start_workflow(
                    "BenchBareCycle", due.isoformat(), id=f"bare-cost-{queue}", task_queue=queue
                )
                await handle.result()
                history = await handle.fetch_history()
    return cost_of_run(list(history.events))


WEBHOOK_SECRET = "whsec_bench_cost"


async def webhook_renewals(renewals: int = 3) -> tuple[Cost, dict[str, int]]:
    """Steady renewals of one subscription with Stripe's webhooks on (see the module doc):
    (their cost, webhook events by outcome)."""
    import httpx
    import uvicorn
    from sqlalchemy import func, select

    from api.app import create_app
    from kakin.platform.settings import Settings
    from kakin.services import subscriptions
    from models.tables import Invoice, WebhookEvent

    seconds_per_month = 4.0
    with temp_dir("cost-webhooks") as work, postgres_database("cost") as database:
        async with dev_server(work) as server, localstripe(work) as emulator:
            kakin = stack.make_kakin(database.url, emulator.url, work / "outbox")
            database.before_drop.append(kakin.close)
            queue = f"bench-cost-webhooks-{secrets.token_hex(3)}"
            settings = Settings(
                stripe_api_key=stack.STRIPE_KEY, database_url=database.url, task_queue=queue,
                stripe_webhook_secret=WEBHOOK_SECRET,
            )  # fmt: skip
            app = create_app(
                settings=settings, sessions=kakin.sessions, stripe=kakin.setup_stripe,
                temporal=lambda: Client.connect(server.address),
            )  # fmt: skip
            port = free_ports(1)[0]
            api = uvicorn.Server(
                uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
            )
            thread = threading.Thread(target=api.run, daemon=True)
            thread.start()
            try:
                while not api.started:
                    await asyncio.sleep(0.05)
                httpx.post(
                    f"{emulator.url}/_config/webhooks/kakin",
                    json={"url": f"http://127.0.0.1:{port}/v1/webhooks/stripe",
                          "secret": WEBHOOK_SECRET},
                    timeout=10,
                ).raise_for_status()  # fmt: skip
                async with stack.kakin_worker(server.client, kakin, queue):
                    customers, price_id = await stack.make_customers(kakin, 1)
                    sub_id = await subscriptions.start_subscription(
                        server.client, kakin.sessions, task_queue=queue,
                        customer_id=customers[0], price_id=price_id,
                        test_clock_speed=30 * 86_400 / seconds_per_month,
                    )  # fmt: skip
                    wid = subscriptions.workflow_id(sub_id)
                    deadline = time.monotonic() + 30 + renewals * seconds_per_month * 3
                    while time.monotonic() < deadline:
                        with kakin.sessions() as session:
                            paid = session.scalar(
                                select(func.count())
                                .select_from(Invoice)
                                .where(Invoice.subscription_id == sub_id, Invoice.status == "paid")
                            )
                        # The first cycle, ``renewals`` steady ones and one more to cancel in.
                        if (paid or 0) >= renewals + 2:
                            break
                        await asyncio.sleep(0.5)
                    await asyncio.sleep(2)  # the last charge's webhook (a second later)
                    await subscriptions.cancel_subscription(
                        server.client, sub_id, reason="bench", at_period_end=False,
                        requested_by="bench",
                    )  # fmt: skip
                    handle = server.client.get_workflow_handle(wid)
                    while (await handle.describe()).status != WorkflowExecutionStatus.COMPLETED:
                        await asyncio.sleep(0.2)
                    await asyncio.sleep(2)
                    runs = [
                        execution
                        async for execution in server.client.list_workflows(f"WorkflowId = '{wid}'")
                    ]
                    runs.sort(key=lambda e: e.start_time)
                    histories = [
                        list(
                            (
                                await server.client.get_workflow_handle(
                                    wid, run_id=execution.run_id
                                ).fetch_history()
                            ).events
                        )
                        for execution in runs
                    ]
                    steady, _ = renewal_cycles(histories)
            finally:
                api.should_exit = True
                thread.join(timeout=10)
            with kakin.sessions() as session:
                outcomes = Counter(
                    re.sub(r"\b(in|pm|cus|sub)_\w+", "…", row.outcome or "?")
                    for row in session.scalars(select(WebhookEvent))
                )
    return steady, dict(outcomes)


def _figures(
    what: str, cost: Cost, bare: Cost, goal_actions: int, *, per: str = "cycle"
) -> list[Figure]:
    summary = cost.per_run()
    base = bare.per_run()
    bare_what = "bare cycle: timer + no-op activity"
    return [
        Figure(
            f"actions per {what} {per}",
            summary["actions"],
            "actions",
            baseline=base["actions"],
            baseline_what=bare_what,
            goal=f"≤ {goal_actions}",
            met=summary["actions"] <= goal_actions,
            notes=", ".join(f"{k}: {v:g}" for k, v in summary["actions_by_kind"].items() if v),
        ),
        Figure(
            f"events per {what} {per}",
            summary["events"],
            "events",
            baseline=base["events"],
            baseline_what=bare_what,
        ),
        Figure(
            f"history bytes per {what} {per}",
            summary["history_bytes"],
            "bytes",
            baseline=base["history_bytes"],
            baseline_what=bare_what,
            goal=f"< {GOAL_BYTES}" if what == "happy-path" else "",
            met=summary["history_bytes"] < GOAL_BYTES if what == "happy-path" else None,
            notes=f"{summary['history_bytes_of_encryption']:,.0f} of them payload encryption",
        ),
    ]


def breakdown(cost: Cost) -> str:
    """Text lines: actions by kind and activity attempts by type (per run)."""
    summary = cost.per_run()
    lines = [f"    {v:5.2f}  {k}" for k, v in summary["actions_by_kind"].items()]
    lines += [
        f"    {v:5.2f}  activity {k}" for k, v in summary["activity_attempts_by_type"].items()
    ]
    top = list(summary["history_bytes_by_event"].items())[:5]
    lines.append("    bytes by event: " + ", ".join(f"{k} {v}" for k, v in top))
    return "\n".join(lines)


async def run() -> Report:
    started = time.monotonic()
    progress(f"counting recorded histories in {HISTORIES}")
    steady, first = happy_path()
    dunned = fully_dunned()
    progress("running one bare cycle for the baseline")
    bare = await bare_cycle()
    progress("renewing one subscription with Stripe's webhooks on (production traffic)")
    hooked, outcomes = await webhook_renewals()
    progress("happy-path renewal with webhooks, per cycle:\n" + breakdown(hooked))
    progress("happy-path cycle (steady renewal), per cycle:\n" + breakdown(steady))
    progress("fully dunned cycle (decline → cancel):\n" + breakdown(dunned))
    progress("bare cycle:\n" + breakdown(bare))
    figures = [
        *_figures("happy-path", steady, bare, GOAL_HAPPY),
        *_figures("fully dunned", dunned, bare, GOAL_DUNNED),
        Figure(
            "actions per happy-path cycle with Stripe webhooks",
            hooked.per_run()["actions"] if hooked.runs else None,
            "actions",
            baseline=bare.per_run()["actions"],
            baseline_what="bare cycle: timer + no-op activity",
            goal=f"≤ {GOAL_HAPPY}",
            met=hooked.runs > 0 and hooked.per_run()["actions"] <= GOAL_HAPPY,
            notes=f"{hooked.runs} renewals measured; webhook events: "
            + ", ".join(f"{k}: {v}" for k, v in outcomes.items()),
        ),
    ]
    before: dict[str, Any] = {}
    for version in PREVIOUS:
        if not _runs("renewals", version):
            continue
        # Histories of the workflow before a patched change: before → after.
        steady_old, _ = happy_path(version)
        dunned_old = fully_dunned(version)
        before[version] = {
            "happy_path_steady": steady_old.per_run(),
            "fully_dunned": dunned_old.per_run(),
        }
        progress(
            f"{version[1:]} histories (before a patched change): happy path "
            f"{steady_old.per_run()['actions']:g} actions, "
            f"{steady_old.per_run()['history_bytes']:,.0f} bytes; "
            f"fully dunned {dunned_old.per_run()['actions']:g} actions"
        )
        figures += [
            Figure(
                f"actions per happy-path cycle ({version[1:]} histories)",
                steady_old.per_run()["actions"],
                "actions",
                baseline=bare.per_run()["actions"],
                baseline_what="bare cycle: timer + no-op activity",
                goal=f"≤ {GOAL_HAPPY}",
                met=steady_old.per_run()["actions"] <= GOAL_HAPPY,
            ),
            Figure(
                f"history bytes per happy-path cycle ({version[1:]} histories)",
                steady_old.per_run()["history_bytes"],
                "bytes",
                baseline=bare.per_run()["history_bytes"],
                baseline_what="bare cycle: timer + no-op activity",
                goal=f"< {GOAL_BYTES}",
                met=steady_old.per_run()["history_bytes"] < GOAL_BYTES,
            ),
            Figure(
                f"actions per fully dunned cycle ({version[1:]} histories)",
                dunned_old.per_run()["actions"],
                "actions",
                baseline=bare.per_run()["actions"],
                baseline_what="bare cycle: timer + no-op activity",
                goal=f"≤ {GOAL_DUNNED}",
                met=dunned_old.per_run()["actions"] <= GOAL_DUNNED,
            ),
        ]
    return Report(
        command="cost",
        params={"histories": "tests/histories"},
        figures=figures,
        details={
            "definition": "https://docs.temporal.io/cloud/actions",
            "happy_path_steady": steady.per_run(),
            "happy_path_first_cycle": first.per_run(),
            "fully_dunned": dunned.per_run(),
            "bare_cycle": bare.per_run(),
            "happy_path_with_webhooks": hooked.per_run(),
            "webhook_outcomes": outcomes,
            "scenarios": scenarios(),
            "previous_histories": before,
            "state_transitions": "not in histories; see `cycles` (DescribeWorkflowExecution)",
        },
        seconds=time.monotonic() - started,
    )
