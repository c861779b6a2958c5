"""Forecasting link utilization: features, estimators, training, the shipped default model."""
