"""Evaluation: metrics (DESIGN §6) and the ``unihand metrics`` command."""
