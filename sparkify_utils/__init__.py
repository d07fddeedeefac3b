"""Sparkify Churn: reproducible churn analysis of Sparkify event logs on PySpark."""

__version__ = "0.1.0"
