"""Sweep definitions, the CLI, and the construction of Ray Tune experiments."""
