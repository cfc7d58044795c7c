"""Figure 4: usage ingestion. Not measurable yet: ``POST /v1/usage`` is built in issue 4.

The command exists so ``all`` lists every figure of issue 6 and the next engineer
has a place to put it: events/s through ``POST /v1/usage`` in batches with
de-duplication against raw ``COPY`` of the same rows, and aggregation time for one
period and for all periods over 10 million events.
"""

from __future__ import annotations

from bench.common import Figure, Report, progress

MESSAGE = "not available yet: POST /v1/usage is built in issue 4"


async def run() -> Report:
    progress(MESSAGE)
    return Report(
        command="usage",
        params={},
        figures=[
            Figure("events per second", None, "events/s", goal="≥ 25,000", notes=MESSAGE),
            Figure("aggregate one period", None, "ms", goal="< 50", notes=MESSAGE),
            Figure("aggregate all periods (10M events)", None, "s", goal="< 10", notes=MESSAGE),
        ],
        details={"available": False, "message": MESSAGE},
    )
