"""The console's charts: they live in ``api.charts`` (the customer's billing page draws
with them too); this name stays so the console's imports keep working."""

from api.charts import (
    BAND_GAP,
    BAND_HEIGHT,
    BAND_LABEL,
    Band,
    Chart,
    Series,
    Units,
    band_chart,
    bar_chart,
    data_table,
    line_chart,
    long_month,
    month_label,
    nice_step,
)

__all__ = [
    "BAND_GAP", "BAND_HEIGHT", "BAND_LABEL", "Band", "Chart", "Series", "Units", "band_chart",
    "bar_chart", "data_table", "line_chart", "long_month", "month_label", "nice_step",
]  # fmt: skip
