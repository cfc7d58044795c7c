"""The pure domain (billing/): money, periods, rating, tax, discounts, proration, dunning."""
