"""Helpers the test groups share: background loops, SSE reading, test handlers, processes, services."""
