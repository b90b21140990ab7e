"""Turn experiment directories into winners, test-split confirmations and reports.

The test split is read here and nowhere else in the project.
"""
