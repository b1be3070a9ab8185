"""Reusable test helpers (real brokers, servers) shared by unit, integration and end-to-end tests."""
