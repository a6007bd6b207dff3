"""Nurture timelines: the decisions made when a lead's timeline wakes, and the use cases behind the
Step Functions tasks."""
