"""The study table's vocabulary: which columns are resources, metrics and experiment keys, their readable
names and units (a run's regime and experiment name: pepr_utils.params). Shared by :mod:`~pepr_utils.analysis.results`,
:mod:`~pepr_utils.analysis.comparisons`, :mod:`~pepr_utils.analysis.stats` and :mod:`~pepr_utils.analysis.verdicts`.
"""

from __future__ import annotations

from .. import resources as resource_table
from ..params import HYPER_SHORT, NAMES, NUMERIC_NAMES

#: The paper's four resources (E, C, T, M) and the run-record column each one reads (pepr_utils.resources).
RESOURCE_COLUMNS: dict[str, str] = resource_table.columns()


#: Readable names and units, for tables, axis labels and the report's sentences.
RESOURCE_NAMES: dict[str, str] = {r.key: r.label for r in resource_table.RESOURCES}


UNITS: dict[str, str] = {
    **resource_table.units(),
    "infer_time_ms_per_image": "ms/image", "num_params": "parameters", "macs_per_image": "MACs/image",
}


EXPERIMENT_FIELDS: tuple[str, ...] = ("dataset", "size", "fraction", "regime")


#: The training hyper-parameters an experiment's name carries when they vary (params.experiment_name).
HYPER_FIELDS: tuple[str, ...] = tuple(HYPER_SHORT)


#: Columns averaged over seeds in the model table (those present are used).
MEAN_FIELDS: tuple[str, ...] = (
    "test_acc", "test_auc", "test_bal_acc", "test_f1_macro", "val_acc", "val_auc",
    "majority_acc", "test_kappa", "kappa_pos",
    *(r.column for r in resource_table.RESOURCES),
    "cpu_energy_kwh", "gpu_energy_kwh", "ram_energy_kwh", "infer_time_ms_per_image",
)


#: Columns constant for a model within an experiment (the first value is kept): the experiment's keys, the
#: other run parameters but the seed, and what the model and the meter say of the run.
FIRST_FIELDS: tuple[str, ...] = (
    *EXPERIMENT_FIELDS, *(n for n in NAMES if n not in (*EXPERIMENT_FIELDS, "model", "seed")),
    "num_params", "trainable_params", "macs_per_image", "input_size", "energy_method", "mem_kind",
)


#: The performance each family of PePR columns puts in P, by column prefix: the paper's test accuracy,
#: test AUC, and the chance-corrected P (Cohen's kappa clipped at 0: a constant guess or a coin flip
#: scores 0 whatever the class balance, so the cheapest model cannot win on price alone).
SCORE_PERFS: dict[str, str] = {"pepr_": "test_acc", "pepr_auc_": "test_auc", "pepr_kappa_": "kappa_pos"}


#: Significance level of the floor check (kappa above 0, one-sided).
FLOOR_ALPHA = 0.05


def label(col: str) -> str:
    """A readable name for a score, metric or resource column (tables, figures and sentences)."""
    names = {"test_acc": "test accuracy", "test_auc": "test AUC", "test_bal_acc": "balanced accuracy",
             "test_f1_macro": "macro F1", **{c: RESOURCE_NAMES[k] for k, c in RESOURCE_COLUMNS.items()}}
    if col in names:
        return names[col]
    for prefix, suffix in (("pepr_auc_", " (AUC as P)"), ("pepr_kappa_", " (chance-corrected P)"),
                           ("pepr_ref_", " (fixed reference)"), ("pepr_", "")):
        if col.startswith(prefix):
            return f"PePR-{col[len(prefix):].upper()}{suffix}"
    return col.replace("_", " ")


_NUMERIC = set(MEAN_FIELDS) | set(NUMERIC_NAMES) | {"num_params", "trainable_params", "macs_per_image", "input_size"}
