"""A worker stopping mid-activity leaves the database clean.

The SDK stops a sync activity by raising ``CancelledError`` inside its thread. Before
activities/sessions.py it could land inside psycopg and fail the session's close with
"another command is already in progress" (seen at worker stops in `bench spike`).
"""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker
from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from activities.sessions import ActivitySession, activity_sessions


@workflow.defn(sandboxed=False)
class QueryUntilStopped:
    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity(
            "query_until_stopped",
            start_to_close_timeout=timedelta(minutes=1),
            retry_policy=RetryPolicy(maximum_attempts=1),
        )


async def test_a_worker_stopped_mid_query_cancels_after_the_session_closes(
    dev_env: WorkflowEnvironment, pg_sessions: sessionmaker[Session]
) -> None:
    sessions = activity_sessions(pg_sessions)
    engine = sessions.kw["bind"]
    started = asyncio.Event()
    loop = asyncio.get_running_loop()
    seen: dict[str, object] = {}

    @activity.defn(name="query_until_stopped")
    def query_until_stopped() -> None:
        try:
            with sessions() as session:
                assert isinstance(session, ActivitySession)
                seen["session"] = session
                queries = 0
                # Statement after statement, so the stop arrives while one is in flight.
                while not activity.is_cancelled():
                    session.execute(text("select pg_sleep(0.001)"))
                    queries += 1
                    if queries == 20:
                        loop.call_soon_threadsafe(started.set)
                seen["queries"] = queries
        except BaseException as error:
            seen["error"] = error
            raise

    queue = f"stop-{uuid.uuid4().hex[:8]}"
    checked_out = engine.pool.checkedout()
    with ThreadPoolExecutor(2) as executor:
        worker = Worker(
            dev_env.client,
            task_queue=queue,
            workflows=[QueryUntilStopped],
            activities=[query_until_stopped],
            activity_executor=executor,
            workflow_runner=UnsandboxedWorkflowRunner(),
            graceful_shutdown_timeout=timedelta(0),  # cancel at once, as a deploy's stop can
        )
        running = asyncio.create_task(worker.run())
        await dev_env.client.start_workflow(
            QueryUntilStopped.run, id=f"wf-{queue}", task_queue=queue
        )
        await asyncio.wait_for(started.wait(), 30)
        await worker.shutdown()
        await running

    # The stop reached the activity as a cancellation, once its session had closed:
    # no "another command is already in progress", no connection left checked out.
    assert type(seen.get("error")).__name__ == "CancelledError", seen.get("error")
    session = seen["session"]
    assert isinstance(session, ActivitySession) and session.get_transaction() is None
    assert isinstance(seen["queries"], int) and seen["queries"] >= 20
    assert engine.pool.checkedout() == checked_out
    with sessions() as session:  # the pool's connections still work
        assert session.execute(text("select 1")).scalar() == 1


def test_outside_an_activity_the_session_is_an_ordinary_one(
    pg_sessions: sessionmaker[Session],
) -> None:
    sessions = activity_sessions(pg_sessions)
    assert activity_sessions(sessions) is sessions  # wrapping twice changes nothing
    with sessions() as session:
        assert session.execute(text("select 2")).scalar() == 2
    assert sessions.kw["expire_on_commit"] is False  # the factory's options are kept
