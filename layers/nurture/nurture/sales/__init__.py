"""Sales: hand-off with context, outcomes, call tasks, and delivery to the CRM."""
