"""Scheduled sweeps: waking the dead, score-decay demotion, graymail sunset."""
