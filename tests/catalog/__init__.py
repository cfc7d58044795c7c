"""The catalog: metrics, usage prices, tax rates and coupons."""
