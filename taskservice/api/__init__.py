"""The HTTP API: app factory, routes, schemas and problem+json errors."""
