"""Clean events → one leakage-safe row of features per user (whole-period and horizon label modes)."""
