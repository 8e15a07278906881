"""Utilities shared by mmfuse estimators and tests."""
