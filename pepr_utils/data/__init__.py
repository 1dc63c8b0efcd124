"""Data: the dataset catalogue, the MedMNIST and LIDC-IDRI loaders, training batches and the data-prep step.

Exports the catalogue and loader (``datasets``), :class:`Batches` (``batches``), checksummed ``fetch``
(``download``) and notebook 01's steps (``preparation``); ``lidc`` reads the raw LIDC-IDRI archive.
"""

from ..face import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "batches": ("Batches",),
    "datasets": ("SIZES", "SPLITS", "MedicalDataset", "dataset_names", "dataset_info", "check_size",
        "check_fraction", "fraction_indices", "load_dataset"),
    "download": ("fetch",),
    "preparation": ("SPLIT_TABLE_FILE", "PIXEL_STATS_FILE", "SAMPLES_FILE", "resolve_out_dir",
        "check_fractions", "label_table", "split_table", "pixel_stats", "sample_grid", "build_manifest", "write_manifest", "prepare"),
})
