"""Fixtures for the service tests (the helpers behind them are in service_helpers.py)."""

from service_helpers import make_server, served

__all__ = ["make_server", "served"]
