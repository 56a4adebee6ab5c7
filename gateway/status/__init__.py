"""The status read model: what the HTTP layer and the CLI show of a running gateway."""
