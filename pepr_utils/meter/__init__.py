"""Metering: energy, CO2, time and memory of the code inside ``with Meter(...)``.

Exports :class:`Meter` and its :class:`Measurement` (``meter``); ``energy`` holds the counters and estimates
it reads (RAPL, NVML, CPU time), ``carbon`` the offline carbon-intensity table.
"""

from ..face import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "carbon": ("country_codes", "carbon_intensity"),
    "meter": ("Energy", "Measurement", "Meter"),
})
