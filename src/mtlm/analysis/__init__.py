"""Analyses of multi-task runs: which tasks help each other, and how runs compare."""
