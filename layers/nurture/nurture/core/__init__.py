"""The domain's types, clock, errors, conditions, profile fields, back-off and observability: what
every layer may use."""
