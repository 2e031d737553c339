"""The machine the suite measures on: what it is and what it is doing meanwhile.

- ``device``: the fingerprint baselines are keyed by (OS, architecture, CPU/SoC, cores);
- ``load``: how many cores other processes kept busy while something ran;
- ``usage``: this process's CPU time and resident memory per generation;
- ``conditions``: power source and plan, governor, frequency, temperatures.
"""
