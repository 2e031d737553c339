"""Fresh measuring processes: what a worker does, how the suite talks to it, how a grid is spread.

- ``protocol``: the Job the suite sends and the events a worker answers with (JSON lines);
- ``worker``: the worker process itself (``python -m npuperf.workers.worker``), and the same loop
  for the suite's own process (``--processes 0``);
- ``pool``: runners (a fresh process per job, or this process), the rotated case orders.

No pytest here: the suite's measuring section (npuperf/suite/measuring.py) drives them.
"""
