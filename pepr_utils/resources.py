"""The resources a run is charged for, as data: one :class:`Resource` row each.

The meter measures them, the run record stores them (``resources.<column>``), the analysis scores them
(PePR-<KEY>), plots label their axes with them and the CLI lists them. A new resource is a row here plus
the code that measures it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Resource:
    key: str  # PePR's letter: pepr_<key>, <key>_n
    column: str  # the record's ``resources`` field and the results table's column
    unit: str
    label: str  # a readable name, for sentences and table headers
    axis: str  # what a figure's axis shows, before the unit
    paper_column: str  # the column of the paper's published CSVs
    required: bool = True  # an ok run must have it (else it may be null: not measurable on this device)

    @property
    def axis_label(self) -> str:
        return f"{self.axis} ({self.unit})"


#: The paper's four resources (E, C, T, M), in its order.
RESOURCES: tuple[Resource, ...] = (
    Resource("e", "energy_kwh", "kWh", "energy", "training energy", "energy"),
    Resource("c", "co2_g", "g CO2e", "CO2", "training emissions", "co2"),
    Resource("t", "train_time_s", "s", "training time", "training time", "train_time"),
    Resource("m", "peak_mem_gb", "GB", "peak memory", "peak memory", "memR", required=False),
)


def columns() -> dict[str, str]:
    """``{key: column}``: ``{"e": "energy_kwh", ...}``."""
    return {r.key: r.column for r in RESOURCES}


def units() -> dict[str, str]:
    """``{column: unit}``."""
    return {r.column: r.unit for r in RESOURCES}
