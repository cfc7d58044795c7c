"""The console's menu: which parts there are, and which roles see each.

Hiding an entry is for the reader's sake only: every page checks its own roles with
``require_staff``. An entry's roles are those its page admits (an admin sees all).
"""

from __future__ import annotations

from dataclasses import dataclass

from kakin.services.staff import StaffInfo, StaffRole

ADMIN, SUPPORT, FINANCE = StaffRole.ADMIN, StaffRole.SUPPORT, StaffRole.FINANCE
EVERYONE = (ADMIN, SUPPORT, FINANCE)


@dataclass(frozen=True)
class Entry:
    path: str
    key: str  # its label in api/console/words
    roles: tuple[StaffRole, ...]


MENU = (
    Entry("/console/", "nav.dashboard", EVERYONE),
    Entry("/console/customers", "nav.customers", EVERYONE),
    Entry("/console/subscriptions", "nav.subscriptions", EVERYONE),
    Entry("/console/invoices", "nav.invoices", EVERYONE),
    Entry("/console/catalog", "nav.catalog", EVERYONE),
    Entry("/console/api-keys", "nav.api_keys", (ADMIN,)),
    Entry("/console/staff", "nav.staff", (ADMIN,)),
    Entry("/console/webhooks", "nav.webhooks", (ADMIN,)),
)


def menu_for(me: StaffInfo) -> list[Entry]:
    return [entry for entry in MENU if me.role in entry.roles]
