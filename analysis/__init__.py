"""Turn experiment directories into winners, test-split confirmations and reports.

The test split is read here and nowhere else in the project.
"""

from trainables.errors import interrupts_exit_while_loading

interrupts_exit_while_loading()
