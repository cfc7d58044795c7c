"""The benchmark harness runs end to end, so it cannot rot (issue 6).

It runs ``python -m bench all --small`` (the CI size) as a subprocess (real dev server, localstripe,
PostgreSQL, worker processes) and checks only that every figure came out with a
number. No timing is asserted: figures on a shared machine are for docs/benchmarks.md.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

EXPECTED = {
    "cycles": ["cycles per second", "state transitions per cycle"],
    "cost": ["actions per happy-path cycle", "actions per fully dunned cycle"],
    "spike": ["p99 lag due → charge", "peak charges per second", "429s seen"],
    "memory": ["worker RSS per idle cached subscription"],
    "usage": ["events per second (POST /v1/usage)", "aggregate one period"],
}


def test_bench_all_small_produces_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    # The bench reads KAKIN_BENCH_POSTGRES, else KAKIN_TEST_POSTGRES, like the tests.
    env = dict(os.environ)
    completed = subprocess.run(
        [sys.executable, "-m", "bench", "all", "--small", "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1500,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    assert "| command" in completed.stdout  # the table
    document = json.loads(out.read_text())
    assert document["machine"]["nproc"]
    reports = {r["command"]: r for r in document["reports"]}
    assert set(reports) == {"cycles", "cost", "spike", "memory", "usage"}
    for command, names in EXPECTED.items():
        figures = {f["name"]: f for f in reports[command]["figures"]}
        for name in names:
            assert name in figures, f"{command}: no figure {name!r}"
        for figure in figures.values():
            if figure["value"] is None:
                continue  # e.g. a figure the run could not sample
            assert math.isfinite(figure["value"]), f"{command}: {figure}"
        measured = [f for f in figures.values() if f["value"] is not None]
        assert measured, f"{command}: no figure has a number"
        for figure in measured:
            if figure["baseline_what"]:
                assert figure["baseline"] is not None and figure["ratio"] is not None, figure
    usage = reports["usage"]["details"]
    # Every event went in once, and came back as a duplicate when resent.
    assert usage["first"]["accepted"] == usage["again"]["duplicates"] > 0
