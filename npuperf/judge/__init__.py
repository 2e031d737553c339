"""Judging: pure decisions over numbers, and the stores they read and write.

- ``stats``: percentiles, summaries, bootstrap ratio tests, Holm;
- ``verdict``: budget, breaker, load, and the regression verdict per case and for the grid;
- ``changes``: change points across nights (E-divisive means);
- ``baselines``: identity, provenance, strict loading, locked merge, atomic save;
- ``history``: every run's figures in a SQLite store.

The decisions (stats, verdict, changes) never import pytest, never print, never touch files.
"""
