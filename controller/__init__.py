"""Sidestep: a forecasting SDN controller for AI training fabrics."""

__version__ = "0.1.0"
