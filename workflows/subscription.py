"""``SubscriptionWorkflow``: the Temporal entry point of one subscription's workflow.

Kept this small on purpose. The sandbox re-imports this module for every workflow a
worker loads; everything the workflow does is in ``workflows/subscription_core.py`` and
the parts it is made of, which are passed through and so loaded once per worker (see
its docstring).
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    # Imported here so the sandbox's module table holds them: the payload converter
    # resolves the input dataclasses' type hints through it.
    import billing.calendar
    import billing.dunning  # noqa: F401
    from kakin.contracts import WORKFLOW_TYPE
    from models.payloads import SubscriptionInput

    # The core arrives as the worker imported it, with the parts it is made of
    # (workflows/state.py lists them): none of them runs in the sandbox. Listing the
    # parts here too would only add their entries to every workflow's module table.
    from workflows.subscription_core import SubscriptionCore


@workflow.defn(name=WORKFLOW_TYPE)
class SubscriptionWorkflow(SubscriptionCore):
    @workflow.init
    def __init__(self, input: SubscriptionInput) -> None:
        super().__init__(input)

    @workflow.run
    async def run(self, input: SubscriptionInput) -> str:
        return await self.main(input)
