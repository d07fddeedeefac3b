"""A run's small artifacts → figures and the Voila dashboard (no Spark)."""
