"""AWS services other than the table: the ingest queue, the event bus, Secrets Manager; the HTTP API's events."""
