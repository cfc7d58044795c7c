"""Links into the Temporal UI, for the faces that point operations at a workflow.

The UI's own paths (``/namespaces/<ns>/workflows[/<id>]``); the base address is the
setting ``temporal_ui_url``. Used by ``kakin up``'s banner and the console.
"""

from __future__ import annotations

from urllib.parse import quote


def ui_link(ui_url: str, namespace: str, *, query: str | None = None, workflow_id: str = "") -> str:
    """A Temporal UI link: a workflow's page, or the list filtered by a visibility query."""
    base = f"{ui_url.rstrip('/')}/namespaces/{quote(namespace, safe='')}/workflows"
    if workflow_id:
        return f"{base}/{quote(workflow_id, safe='')}"
    return f"{base}?query={quote(query, safe='')}" if query else base
