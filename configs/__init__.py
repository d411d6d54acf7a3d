"""Experiment configurations and prompt sets."""
