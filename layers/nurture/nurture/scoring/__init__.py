"""Two-axis lead scoring (fit x engagement), lifecycle thresholds, buying stage, and the lead's explained view."""
