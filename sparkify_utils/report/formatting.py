"""Numbers in report text: one formatter for the notebooks and the dashboard."""

from __future__ import annotations

import pandas as pd


def fmt(value: float | None, spec: str = ",.0f", missing: str = "n/a") -> str:
    """Format a number for report text; ``missing`` when it is absent (e.g. a churn group without users)."""
    return missing if value is None or pd.isna(value) else format(value, spec)
