"""The grid: a YAML spec expanded into runs, run resumably in parallel (papermill on Dask), one failure isolated.

Exports the spec (``spec``) and the runner (``runner``); ``worker`` executes one run on a Dask worker,
``child`` is that run's papermill process, ``fork_server`` and ``kernel`` start both warm, ``gpus`` gives each
local worker its own GPU, ``timing`` reads a grid's timings.
"""

from ..face import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "runner": ("grid_dir", "grid_states", "grid_status", "collect_grid", "run_grid"),
    "spec": ("Run", "Grid", "shipped_grids", "load_grid", "expand_grid", "missing_checkpoints"),
    "timing": ("grid_timing",),
})
