"""Paired comparisons between experiments that share their models: pretraining against scratch, more
training data against less; each model is paired with itself, pooled over contexts where the same two
conditions meet several times (as the paper's violins pool its experiments).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from ..errors import PeprError
from ..params import experiment_name, is_missing, is_true
from ..score import pepr
from .columns import RESOURCE_COLUMNS, SCORE_PERFS
from .stats import paired_test


@dataclass(frozen=True)
class Comparison:
    """Two conditions (``label_a`` vs ``label_b``) compared on the models they share.

    ``pairs`` holds one ``(experiment a, experiment b)`` per context: a single context, or several
    pooled (every model in every context is then one pair). Differences are a - b.
    """

    kind: str  # "pretraining" or "data"
    label_a: str
    label_b: str
    context: str
    pairs: tuple[tuple[str, str], ...]
    n_pairs: int

    @property
    def pooled(self) -> bool:
        return len(self.pairs) > 1

    @property
    def name(self) -> str:
        return f"{self.label_a} vs {self.label_b} ({self.context})"

    def row(self) -> dict:
        """The comparison as a table row; ``a`` and ``b`` list its experiments for reading."""
        return {"comparison": self.name, "kind": self.kind, "a": POOL_SEP.join(a for a, _ in self.pairs),
                "b": POOL_SEP.join(b for _, b in self.pairs), "label_a": self.label_a, "label_b": self.label_b,
                "n_pairs": self.n_pairs, "pooled": self.pooled, "spec": self}


def find_comparisons(table: pd.DataFrame) -> pd.DataFrame:
    """The paired comparisons the runs allow, each between two experiments sharing their models.

    * ``pretraining``: each non-scratch regime against scratch (same dataset, size, fraction);
    * ``data``: the largest training fraction against each smaller one (same dataset, size, regime).

    Where the same two conditions are compared in several contexts (pretrained vs scratch on three
    datasets, say), a **pooled** comparison follows them: every model in every context is one pair, as
    in the paper's violins, which pool all models of its experiments. A study with few models per
    experiment (the quick study pairs one pretrained model per dataset) can only be tested that way.
    One row per :class:`Comparison` (column ``spec``, what the paired functions use), with its fields
    for reading: comparison, kind, a, b (its experiments), label_a, label_b, n_pairs, pooled.
    """
    exps = table.drop_duplicates("experiment").set_index("experiment")
    models = table.groupby("experiment")["model"].apply(set)
    found: list[Comparison] = []

    def add(kind, a, b, label_a, label_b, context):
        shared = len(models[a] & models[b])
        if shared:
            found.append(Comparison(kind, label_a, label_b, context, ((a, b),), shared))

    for a, ea in exps.iterrows():
        for b, eb in exps.iterrows():
            if a == b:
                continue
            def same(fields, ea=ea, eb=eb):
                return all(_same(ea[f], eb[f]) for f in fields)

            suffix_a = _hyper_suffix(a, ea)
            if suffix_a != _hyper_suffix(b, eb):
                continue
            if same(("dataset", "size", "fraction")) and eb["regime"] == "scratch" and ea["regime"] != "scratch":
                add("pretraining", a, b, ea["regime"], "scratch",
                    f"{ea['dataset']}, {_int(ea['size'])}px, {_pct(ea['fraction'])} data{suffix_a}")
            if same(("dataset", "size", "regime")) and _num(ea["fraction"]) > _num(eb["fraction"]):
                largest = exps[(exps["dataset"] == ea["dataset"]) & (exps["size"] == ea["size"])
                               & (exps["regime"] == ea["regime"])]["fraction"].max()
                if _same(ea["fraction"], largest):
                    add("data", a, b, f"{_pct(ea['fraction'])} data", f"{_pct(eb['fraction'])} data",
                        f"{ea['dataset']}, {_int(ea['size'])}px, {ea['regime']}{suffix_a}")
    groups: dict[tuple[str, str, str], list[Comparison]] = {}
    for c in found:
        groups.setdefault((c.kind, c.label_a, c.label_b), []).append(c)
    for (kind, label_a, label_b), group in groups.items():
        if len(group) > 1:
            found.append(Comparison(kind, label_a, label_b, f"pooled over {len(group)} comparisons",
                                    tuple(p for c in group for p in c.pairs), sum(c.n_pairs for c in group)))
    return pd.DataFrame([c.row() for c in found],
                        columns=["comparison", "kind", "a", "b", "label_a", "label_b", "n_pairs", "pooled", "spec"])


def as_comparisons(comparisons: pd.DataFrame | Iterable[Comparison]) -> list[Comparison]:
    """The :class:`Comparison` objects of :func:`find_comparisons`'s table (or of a list of them)."""
    if isinstance(comparisons, pd.DataFrame):
        return list(comparisons["spec"]) if len(comparisons) else []
    return list(comparisons)


#: joins the experiments of a pooled comparison in the ``a`` and ``b`` columns written for reading
POOL_SEP = " + "


def _hyper_suffix(exp: str, row: pd.Series) -> str:
    base = experiment_name(row)  # the experiment's name without its hyper-parameters
    return exp[len(base):] if exp.startswith(base) else ""


def _same(a, b) -> bool:
    if is_missing(a) and is_missing(b):
        return True
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a) == str(b)


def _num(v) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def _int(v) -> str:
    return "?" if is_missing(v) else f"{int(v)}"


def _pct(fraction) -> str:
    return "?" if is_missing(fraction) else f"{100 * float(fraction):g}%"


def minmax_score_parts(col: str, resources: Mapping[str, str] = RESOURCE_COLUMNS) -> tuple[str, str] | None:
    """``(perf column, resource key)`` of a min-max PePR column (``pepr_e``, ``pepr_kappa_t``...), else None:
    looked up among the columns :func:`~pepr_utils.analysis.tables.score_table` names, not parsed from the name."""
    columns = {f"{prefix}{key}": (perf, key) for prefix, perf in SCORE_PERFS.items() for key in resources}
    return columns.get(col)


def common_scale(table: pd.DataFrame, experiments: Sequence[str], value: str,
                 resources: Mapping[str, str] = RESOURCE_COLUMNS) -> pd.DataFrame:
    """The rows of ``experiments`` with ``value`` on one scale: a min-max PePR column is recomputed with
    R_n normalised over the union of their models, so PePR values from different experiments are
    compared within one normalisation (per-experiment min-max values are not comparable across
    experiments: a one-model experiment would score PePR = P). Other values are returned as they are."""
    rows = table[table["experiment"].isin(list(experiments))]
    parts = minmax_score_parts(value, resources)
    if parts is None or not len(rows):
        return rows
    perf, key = parts
    rows = rows.copy()
    rows[value] = pepr(rows, perf, {key: resources[key]}, group=None, prefix="_union_")[f"_union_{key}"]
    return rows


def comparison_values(table: pd.DataFrame, comparison: Comparison, value: str,
                      resources: Mapping[str, str] = RESOURCE_COLUMNS) -> pd.DataFrame:
    """The models each pair of experiments of ``comparison`` shares, with ``value`` on each side and
    ``diff = a - b``. Pooled, the pairing unit is the model in one context, named ``model @ experiment a``.
    A min-max PePR ``value`` is put on one scale per context first (:func:`common_scale`)."""
    frames = []
    for ea, eb in comparison.pairs:
        both = common_scale(table, (ea, eb), value, resources)
        left = both[both["experiment"] == ea][["model", value]].rename(columns={value: "a"})
        right = both[both["experiment"] == eb][["model", value]].rename(columns={value: "b"})
        pairs = left.merge(right, on="model").dropna(subset=["a", "b"])
        if comparison.pooled:
            pairs["model"] = pairs["model"].astype(str) + " @ " + ea
        frames.append(pairs)
    pairs = pd.concat(frames, ignore_index=True)
    pairs["diff"] = pairs["a"] - pairs["b"]
    return pairs.sort_values("model").reset_index(drop=True)


def paired_values(table: pd.DataFrame, a: str, b: str, value: str,
                  resources: Mapping[str, str] = RESOURCE_COLUMNS) -> pd.DataFrame:
    """:func:`comparison_values` for the ``a`` and ``b`` columns of a written table (a paired-tests CSV read
    back), where a pooled comparison lists its experiments joined by ``POOL_SEP``."""
    exps_a, exps_b = a.split(POOL_SEP), b.split(POOL_SEP)
    if len(exps_a) != len(exps_b):
        raise PeprError(f"a pooled comparison pairs {len(exps_a)} experiments with {len(exps_b)}")
    pairs = tuple(zip(exps_a, exps_b, strict=True))
    return comparison_values(table, Comparison("", "a", "b", "", pairs, 0), value, resources)


def paired_tests(scored: pd.DataFrame, comparisons: pd.DataFrame | Iterable[Comparison],
                 values: Sequence[str] = ("test_acc", "pepr_e", "energy_kwh")) -> pd.DataFrame:
    """One row per comparison and value: the paired statistics of :func:`paired_test`."""
    rows = []
    for comp in as_comparisons(comparisons):
        for value in dict.fromkeys(values):
            if value not in scored.columns:
                continue
            pairs = comparison_values(scored, comp, value)
            row = comp.row()
            rows.append({**{k: row[k] for k in ("comparison", "kind", "a", "b", "pooled")}, "value": value,
                         **paired_test(pairs["a"], pairs["b"])})
    return pd.DataFrame(rows)


def paired_long(scored: pd.DataFrame, comparisons: pd.DataFrame | Iterable[Comparison], value: str) -> pd.DataFrame:
    """Long table (comparison, model, side, value) for paired violin plots."""
    frames = []
    for comp in as_comparisons(comparisons):
        pairs = comparison_values(scored, comp, value)
        for side, name in (("a", comp.label_a), ("b", comp.label_b)):
            frames.append(pd.DataFrame({"comparison": comp.name, "model": pairs["model"],
                                        "side": name, "group": side, value: pairs[side]}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["comparison", "model", "side", "group", value])


def paired_violin_inputs(scored: pd.DataFrame, comparisons: pd.DataFrame | Iterable[Comparison],
                         value: str = "test_acc", tests: pd.DataFrame | None = None, min_pairs: int = 2) -> dict:
    """Keyword arguments of :func:`pepr_utils.analysis.plots.paired_violins`: a wide table (one row per model, two
    columns per comparison), the column pairs, their labels, panel titles and the Wilcoxon p-values.
    Comparisons with fewer than ``min_pairs`` pairs get no panel (a violin of one point says nothing;
    the tests table still lists them)."""
    columns: dict[str, pd.Series] = {}
    pairs, labels, titles, pvalues = [], [], [], []
    p_of = {}
    if tests is not None and len(tests):
        sel = tests[tests["value"] == value]
        p_of = dict(zip(sel["comparison"], sel["wilcoxon_p"], strict=True))
    for i, comp in enumerate(as_comparisons(comparisons)):
        p = comparison_values(scored, comp, value).set_index("model")
        if len(p) < max(1, min_pairs):
            continue
        a, b = f"{i}:a", f"{i}:b"
        columns[a], columns[b] = p["a"], p["b"]
        pairs.append((a, b))
        labels.append((comp.label_a, comp.label_b))
        titles.append(comp.context)
        pvalues.append(p_of.get(comp.name))
    if not pairs:
        raise PeprError(f"no paired experiments (pretrained vs scratch, or two training fractions) share "
                        f"{max(1, min_pairs)} or more models")
    wide = pd.concat(columns, axis=1).sort_index()  # rows: models (pooled panels: model @ experiment)
    ylabel = {"test_acc": "test accuracy (fraction correct)", "test_auc": "test AUC (0–1)"}.get(value, value)
    return {"wide": wide, "pairs": pairs, "labels": labels, "titles": titles,
            "pvalues": pvalues if tests is not None else None, "ylabel": ylabel}


def pair_unit(test: Mapping) -> str:
    """What one pair of a paired test is: a model, or (pooled over experiments) a model in one context."""
    return "model-experiment pairs" if is_true(test.get("pooled", False)) else "models"
