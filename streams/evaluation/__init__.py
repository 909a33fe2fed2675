"""The alert-quality evaluation: how well the alert rules catch drops in simulated traffic.

``history`` runs the simulator through the worker's processor and collector into weeks of
exported samples; ``prometheus`` backfills them into a real Prometheus (``tools`` finds its
binaries); ``quality`` injects drops, evaluates every volume alert over them and tabulates
detection and false alarms (``corridor alerts evaluate``). The rules themselves and their
thresholds live in ``streams.alerting``, which imports nothing from here.
"""
