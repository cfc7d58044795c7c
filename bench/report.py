"""``python -m bench.report A.json [B.json ...]``: one markdown table from saved runs.

For docs/benchmarks.md: the figures of several ``--json`` files (e.g. a full-size
``cycles`` run and a ``--small`` run of the rest), each command once (the last file
that has it wins), with the parameters and duration of each command underneath.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from bench.common import Figure, Report, table


def load(paths: list[Path]) -> tuple[list[Report], dict[str, Any]]:
    reports: dict[str, Report] = {}
    machine: dict[str, Any] = {}
    for path in paths:
        document = json.loads(path.read_text())
        machine = document.get("machine", machine)
        for raw in document["reports"]:
            reports[raw["command"]] = Report(
                command=raw["command"],
                params=raw["params"],
                figures=[Figure(**f) for f in raw["figures"]],
                details=raw.get("details", {}),
                seconds=raw.get("seconds", 0.0),
            )
    order = ["cycles", "cost", "spike", "memory", "usage"]
    return sorted(reports.values(), key=lambda r: order.index(r.command)), machine


def main(argv: list[str]) -> int:
    reports, _ = load([Path(a) for a in argv])
    print(table(reports))
    print()
    for report in reports:
        params = ", ".join(f"{k} {v}" for k, v in report.params.items())
        print(f"- `{report.command}`: {params or 'no parameters'}; {report.seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
