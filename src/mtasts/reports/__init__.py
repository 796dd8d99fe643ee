"""TLS reports (RFC 8460): limits, parsing of e-mail wrappers, ingestion, aggregates."""
