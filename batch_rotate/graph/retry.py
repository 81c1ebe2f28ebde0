"""Moved to `runner.py`; kept only for `cli.py` until its rewrite imports from there."""

from batch_rotate.graph.runner import RunnerStats

__all__ = ["RunnerStats"]
