"""SubscriptionWorkflow: lifecycle, support, plan changes, workers, exactly-once, replay."""
