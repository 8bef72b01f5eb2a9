"""The lifecycle core: one way to follow, cancel and end a job, for every kind of job and both sides.

- ``_kinds``: a job's address and what the core asks of a kind of job (statuses, outcomes), no I/O.
- ``_follower``: following without I/O: the deadline, the timeline, the polling schedule.
- ``_outcome``: why a job was cancelled, how the cancel went, the honest outcome; no I/O.
- ``_async/``: the drivers (follow, cancel, the end of a job, start-to-end) and the adapters' requests
  (``_api``, ``_runs``); ``_sync/`` is generated from it by ``scripts/unasync.py``.
- ``_fanout``: following many jobs from one event loop.
- ``_hooks``: the core's reports made visible in Prefect (logs, events, artifacts, progress).
- ``_run_kind``: the runs API as a kind.
"""
