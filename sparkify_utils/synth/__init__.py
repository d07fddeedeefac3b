"""The calibrated synthetic Sparkify log: behaviour model, generator and calibration report."""
