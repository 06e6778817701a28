"""Fixtures for the service tests (the helpers behind them are in service_helpers.py)."""

from service_helpers import _analyser_stand_in, make_server, served

__all__ = ["_analyser_stand_in", "make_server", "served"]
