"""Taking in what websites and forms send: the API's use cases, the Segment and form-tool boundaries,
and the consumer that stores events, resolves identity and scores."""
