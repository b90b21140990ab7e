"""Sweep definitions, the CLI, and the construction of Ray Tune experiments."""

from trainables.errors import interrupts_exit_while_loading

interrupts_exit_while_loading()
