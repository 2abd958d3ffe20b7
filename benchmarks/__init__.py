"""Benchmarks: what the tool costs, as ratios against plain PyTorch, measured side by side.

Run all: ``scripts/bench`` (or ``.venv/bin/python -m benchmarks``); ``--quick`` for a
shorter pass. Correctness lives in the tests; these only time.
"""
