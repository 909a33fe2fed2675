"""The pure pipeline: one record in, partition state and dead letters out.

No I/O and no clock of its own; it imports no faust, aiokafka, click or rich (an
import-linter contract in pyproject.toml says so). Every family's measures and metric
series are declared in :mod:`streams.core.families`.
"""
