"""The unit ids Grafana's panels accept (``fieldConfig.defaults.unit``).

Grafana's standard units, by id, as its value formats define them (``grafana_units.txt`` names
the source).
A unit id Grafana does not know is drawn as a plain suffix, without scaling or SI prefixes.
Besides these, Grafana reads custom units written ``<kind>:<text>`` (``CUSTOM_KINDS``).
"""

from __future__ import annotations

from pathlib import Path

UNIT_IDS = frozenset(
    unit
    for line in (Path(__file__).parent / "grafana_units.txt").read_text(encoding="utf-8").splitlines()
    if not line.startswith("#")
    for unit in line.split()
)

#: Custom units: ``suffix:t``, ``prefix:€``, ``si:g``, ``count:TEU``, ``currency:SGD``, ``time:YYYY``.
CUSTOM_KINDS = ("suffix", "prefix", "si", "count", "currency", "time")


def known(unit: str) -> bool:
    """Whether Grafana reads ``unit`` as a unit, not as a plain unknown suffix."""
    kind, colon, text = unit.partition(":")
    return unit in UNIT_IDS or (bool(colon) and bool(text) and kind in CUSTOM_KINDS)
