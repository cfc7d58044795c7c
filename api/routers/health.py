"""Liveness and readiness: no key needed, so load balancers and probes can ask."""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from api.deps import DepsDep
from kakin.services import health as health_service
from kakin.views.health import Health, Readiness

log = logging.getLogger("kakin.api")

READY_TIMEOUT = 5.0
NAMES = {"database": "the database", "temporal": "Temporal"}


router = APIRouter(prefix="/v1", tags=["health"])


@router.get("/health", response_model=Health)
async def health() -> Health:
    """Liveness: the process answers. No key needed."""
    return Health()


@router.get(
    "/ready",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "a dependency is down"}},
)
async def ready(deps: DepsDep) -> JSONResponse:
    """Readiness: the database answers SELECT 1 and Temporal its health check."""
    checks: dict[str, str] = {}
    try:
        await asyncio.wait_for(
            run_in_threadpool(health_service.ping_database, deps.sessions), READY_TIMEOUT
        )
        checks["database"] = "ok"
    except Exception as error:
        log.warning("readiness: database unavailable: %s", error)
        checks["database"] = "unavailable"
    try:
        client = await asyncio.wait_for(deps.temporal_client(), READY_TIMEOUT)
        ok = await asyncio.wait_for(client.service_client.check_health(), READY_TIMEOUT)
        checks["temporal"] = "ok" if ok else "unavailable"
    except Exception as error:
        log.warning("readiness: temporal unavailable: %s", error)
        checks["temporal"] = "unavailable"
    failed = [name for name, state in checks.items() if state != "ok"]
    body = Readiness(status="unavailable" if failed else "ready", checks=checks)
    content = body.model_dump()
    if failed:
        down = " and ".join(NAMES[name] for name in failed)
        content["error"] = {
            "type": "unavailable",
            "message": f"Not ready: {down} cannot be reached.",
        }
    return JSONResponse(content, status_code=503 if failed else 200)
