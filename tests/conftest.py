"""Settings for every test: hypothesis draws the same examples on every run and has no deadline."""

from hypothesis import settings

# Deterministic runs: a failure prints its example and replays with the same command; no
# deadline, since these machines are shared and a slow example is not a wrong one.
settings.register_profile("corridor", derandomize=True, deadline=None, print_blob=True)
settings.load_profile("corridor")
