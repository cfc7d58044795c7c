"""The public search attributes (a contract: dashboards and saved searches use them).

Never put names, emails or card data here: search attributes are not encrypted.
"""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

SUBSCRIPTION_STATUS = SearchAttributeKey.for_keyword("SubscriptionStatus")
CUSTOMER_ID = SearchAttributeKey.for_keyword("CustomerId")
PLAN_ID = SearchAttributeKey.for_keyword("PlanId")
NEXT_RENEWAL_AT = SearchAttributeKey.for_datetime("NextRenewalAt")

ALL = (SUBSCRIPTION_STATUS, CUSTOMER_ID, PLAN_ID, NEXT_RENEWAL_AT)
