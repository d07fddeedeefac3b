"""Per-user table → compared churn models (any backend), the verdict and the at-risk list."""
