"""``corridor bench``: the worker's throughput, memory and latency, measured against baselines in the same run.

``runner.py`` runs the stages (``run_bench``) on the topics ``clusters.py`` makes fresh for
each group of stages (a new embedded broker, or an existing cluster's topics recreated),
``baselines.py`` holds the plain aiokafka + pydantic loop and the bare faust agent (each run
as a subprocess), ``events.py`` makes the events, ``measure.py`` reads the worker's /metrics,
memory and log, and ``report.py`` turns the numbers into JSON and table rows.
docs/benchmarks.md says what each number measures. Nothing is imported here, so that the
command line loads the bench only when it runs.
"""
