"""Paired comparisons between experiments that share their models: pretraining against scratch, more
training data against less; each model is paired with itself, pooled over contexts where the same two
conditions meet several times (as the paper's violins pool its experiments).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from .errors import PeprError
from .score import pepr
from .stats import paired_test
from .study_columns import RESOURCES, SCORE_PERFS, _fraction_label, _missing, _truthy


def find_comparisons(table: pd.DataFrame) -> pd.DataFrame:
    """The paired comparisons the runs allow, each between two experiments sharing their models.

    * ``pretraining``: each non-scratch regime against scratch (same dataset, size, fraction);
    * ``data``: the largest training fraction against each smaller one (same dataset, size, regime).

    Where the same two conditions are compared in several contexts (pretrained vs scratch on three
    datasets, say), a **pooled** comparison follows them: every model in every context is one pair, as
    in the paper's violins, which pool all models of its experiments. A study with few models per
    experiment (the quick study pairs one pretrained model per dataset) can only be tested that way.
    Columns: comparison, kind, a, b (experiments, joined by ``POOL_SEP`` when pooled; differences are
    a - b), label_a, label_b, n_pairs, pooled.
    """
    exps = table.drop_duplicates("experiment").set_index("experiment")
    models = table.groupby("experiment")["model"].apply(set)
    rows = []

    def add(kind, a, b, label_a, label_b, context):
        shared = len(models[a] & models[b])
        if shared:
            rows.append({"comparison": f"{label_a} vs {label_b} ({context})", "kind": kind, "a": a, "b": b,
                         "label_a": label_a, "label_b": label_b, "n_pairs": shared, "pooled": False})

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
    single = pd.DataFrame(rows, columns=["kind", "a", "b", "label_a", "label_b", "n_pairs"])
    for (kind, label_a, label_b), g in single.groupby(["kind", "label_a", "label_b"], sort=False):
        if len(g) > 1:
            rows.append({"comparison": f"{label_a} vs {label_b} (pooled over {len(g)} comparisons)", "kind": kind,
                         "a": POOL_SEP.join(g["a"]), "b": POOL_SEP.join(g["b"]), "label_a": label_a,
                         "label_b": label_b, "n_pairs": int(g["n_pairs"].sum()), "pooled": True})
    return pd.DataFrame(rows, columns=["comparison", "kind", "a", "b", "label_a", "label_b", "n_pairs", "pooled"])


#: joins the experiments of a pooled comparison in its ``a`` and ``b`` fields (never in an experiment name)
POOL_SEP = " + "


def _hyper_suffix(exp: str, row: pd.Series) -> str:
    base = f"{row['dataset']}-{_int(row['size'])}px-{_fraction_label(row['fraction'])}-{row['regime']}"
    return exp[len(base):] if exp.startswith(base) else ""


def _same(a, b) -> bool:
    if _missing(a) and _missing(b):
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
    return "?" if _missing(v) else f"{int(v)}"


def _pct(fraction) -> str:
    return "?" if _missing(fraction) else f"{100 * float(fraction):g}%"


def minmax_score_parts(col: str, resources: Mapping[str, str] = RESOURCES) -> tuple[str, str] | None:
    """``(perf column, resource key)`` of a min-max PePR column (``pepr_e``, ``pepr_kappa_t``...), else None."""
    for prefix in sorted(SCORE_PERFS, key=len, reverse=True):
        rest = col[len(prefix):]
        if col.startswith(prefix) and rest in resources:
            return SCORE_PERFS[prefix], rest
    return None


def common_scale(table: pd.DataFrame, experiments: Sequence[str], value: str,
                 resources: Mapping[str, str] = RESOURCES) -> pd.DataFrame:
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


def paired_values(table: pd.DataFrame, a: str, b: str, value: str,
                  resources: Mapping[str, str] = RESOURCES) -> pd.DataFrame:
    """Models present in both experiments ``a`` and ``b`` with ``value`` in each and ``diff = a - b``.

    ``a`` and ``b`` may list experiments joined by ``POOL_SEP`` (a pooled comparison, paired position by
    position); the pairing unit is then the model in one context, named ``model @ experiment a``. A
    min-max PePR ``value`` is put on one scale per context first (:func:`common_scale`).
    """
    exps_a, exps_b = a.split(POOL_SEP), b.split(POOL_SEP)
    if len(exps_a) != len(exps_b):
        raise PeprError(f"a pooled comparison pairs {len(exps_a)} experiments with {len(exps_b)}")
    frames = []
    for ea, eb in zip(exps_a, exps_b, strict=True):
        both = common_scale(table, (ea, eb), value, resources)
        left = both[both["experiment"] == ea][["model", value]].rename(columns={value: "a"})
        right = both[both["experiment"] == eb][["model", value]].rename(columns={value: "b"})
        pairs = left.merge(right, on="model").dropna(subset=["a", "b"])
        if len(exps_a) > 1:
            pairs["model"] = pairs["model"].astype(str) + " @ " + ea
        frames.append(pairs)
    pairs = pd.concat(frames, ignore_index=True)
    pairs["diff"] = pairs["a"] - pairs["b"]
    return pairs.sort_values("model").reset_index(drop=True)


def paired_tests(scored: pd.DataFrame, comparisons: pd.DataFrame,
                 values: Sequence[str] = ("test_acc", "pepr_e", "energy_kwh")) -> pd.DataFrame:
    """One row per comparison and value: the paired statistics of :func:`paired_test`."""
    rows = []
    for _, comp in comparisons.iterrows():
        for value in dict.fromkeys(values):
            if value not in scored.columns:
                continue
            pairs = paired_values(scored, comp["a"], comp["b"], value)
            rows.append({"comparison": comp["comparison"], "kind": comp["kind"], "a": comp["a"], "b": comp["b"],
                         "pooled": bool(comp.get("pooled", False)), "value": value,
                         **paired_test(pairs["a"], pairs["b"])})
    return pd.DataFrame(rows)


def paired_long(scored: pd.DataFrame, comparisons: pd.DataFrame, value: str) -> pd.DataFrame:
    """Long table (comparison, model, side, value) for paired violin plots."""
    frames = []
    for _, comp in comparisons.iterrows():
        pairs = paired_values(scored, comp["a"], comp["b"], value)
        for side in ("a", "b"):
            frames.append(pd.DataFrame({"comparison": comp["comparison"], "model": pairs["model"],
                                        "side": comp[f"label_{side}"], "group": side, value: pairs[side]}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["comparison", "model", "side", "group", value])


def paired_violin_inputs(scored: pd.DataFrame, comparisons: pd.DataFrame, value: str = "test_acc",
                         tests: pd.DataFrame | None = None, min_pairs: int = 2) -> dict:
    """Keyword arguments of :func:`pepr_utils.plots.paired_violins`: a wide table (one row per model, two
    columns per comparison), the column pairs, their labels, panel titles and the Wilcoxon p-values.
    Comparisons with fewer than ``min_pairs`` pairs get no panel (a violin of one point says nothing;
    the tests table still lists them)."""
    columns: dict[str, pd.Series] = {}
    pairs, labels, titles, pvalues = [], [], [], []
    p_of = {}
    if tests is not None and len(tests):
        sel = tests[tests["value"] == value]
        p_of = dict(zip(sel["comparison"], sel["wilcoxon_p"], strict=True))
    for i, (_, comp) in enumerate(comparisons.iterrows()):
        p = paired_values(scored, comp["a"], comp["b"], value).set_index("model")
        if len(p) < max(1, min_pairs):
            continue
        a, b = f"{i}:a", f"{i}:b"
        columns[a], columns[b] = p["a"], p["b"]
        pairs.append((a, b))
        labels.append((comp["label_a"], comp["label_b"]))
        titles.append(comp["comparison"].split(" (", 1)[-1].rstrip(")"))
        pvalues.append(p_of.get(comp["comparison"]))
    if not pairs:
        raise PeprError(f"no paired experiments (pretrained vs scratch, or two training fractions) share "
                        f"{max(1, min_pairs)} or more models")
    wide = pd.concat(columns, axis=1).sort_index()  # rows: models (pooled panels: model @ experiment)
    ylabel = {"test_acc": "test accuracy", "test_auc": "test AUC"}.get(value, value)
    return {"wide": wide, "pairs": pairs, "labels": labels, "titles": titles,
            "pvalues": pvalues if tests is not None else None, "ylabel": ylabel}


def pair_unit(test: Mapping) -> str:
    """What one pair of a paired test is: a model, or (pooled over experiments) a model in one context."""
    return "model-experiment pairs" if _truthy(test.get("pooled", False)) else "models"
