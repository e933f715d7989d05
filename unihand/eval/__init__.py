"""Evaluation: metrics (docs/design.md §6) and the ``unihand metrics`` command."""
