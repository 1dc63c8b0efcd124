"""The sentences that read the numbers of the analysis report.

The ``say_*`` functions turn analysis tables into Markdown sentences, so the report's words always match
its numbers (nothing is hard-coded). Notebook ``04_analysis`` writes them through
:class:`~pepr_utils.report.writer.Report`; the first screen's sentences are
:mod:`~pepr_utils.report.first_screen`'s, and ``pepr report`` (executing the notebook and exporting the
HTML) is :mod:`pepr_utils.report.build`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from ..analysis.columns import label
from ..analysis.comparisons import pair_unit
from ..analysis.formatting import energy_split, fmt, fmt_p, fmt_params, plural
from ..resources import RESOURCES as RESOURCE_TABLE


# ------------------------------------------------------------------------------------- formatting
def _bullets(lines: Sequence[str]) -> str:
    return "\n".join(f"- {line}" for line in lines)


# --------------------------------------------------------------------------------------- sentences
def say_study(facts: Mapping, resources: Mapping[str, str]) -> str:
    """What was run, and what the reader must keep in mind when reading every number below."""
    lines = [
        f"This report covers **{facts['n_runs']} run records**: {facts['n_ok']} scored, "
        f"{facts['n_failed']} failed and {facts['n_incompatible']} incompatible"
        + (f", {facts['n_other_excluded']} without a test accuracy" if facts["n_other_excluded"] else "")
        + ". Runs that did not finish with status `ok` are listed below and left out of every score.",
        f"They form **{plural(len(facts['experiments']), 'experiment')}** (dataset × image size × training "
        f"fraction × regime) over {plural(len(facts['datasets']), 'dataset')} "
        f"({', '.join(facts['datasets']) or 'none'}) and {plural(len(facts['models']), 'model')}.",
    ]
    if facts["single_seed"]:
        lines.append("Each model ran with **a single seed**, so no intervals are given and the top-rank "
                     "bootstrap can only resample the test set (when predictions were saved); every "
                     "difference below is one observation.")
    else:
        lines.append(f"Models ran with up to **{facts['max_seeds']} seeds**; tables use the mean over seeds, "
                     "and a section below gives 95% intervals and how often the top model stays on top.")
    if facts["single_model_experiments"]:
        lines.append("Only one model was scored in " + ", ".join(f"`{e}`" for e in facts["single_model_experiments"])
                     + ": min-max PePR is undefined with nothing to normalise against, so it is left empty there "
                     "(never set to the accuracy); the fixed-reference PePR still scores it.")
    missing = [r.key for r in RESOURCE_TABLE if r.key not in resources]
    if missing:
        lines.append("Not recorded, so not scored: " + ", ".join(f"PePR-{m.upper()}" for m in missing) + ".")
    if facts.get("co2_per_kwh") and "c" in resources and "e" in resources:
        lines.append(f"Every CO2 value is energy × {fmt(facts['co2_per_kwh'])} g CO2e/kWh (one carbon intensity), "
                     "so PePR-C ranks exactly as PePR-E here.")
    if split := energy_split(facts):
        lines.append(f"Energy was **partly estimated** ({split}: {', '.join(facts['energy_methods'])}): "
                     "the metered part comes from counters, the rest from a model of power, so treat PePR-E and "
                     "PePR-C as model comparisons under that estimate.")
    elif facts["energy_estimated"]:
        lines.append(f"Energy was **estimated** ({', '.join(facts['energy_methods'])}), not measured by a "
                     "power meter: treat PePR-E and PePR-C as model comparisons under that estimate.")
    elif facts["energy_methods"]:
        lines.append(f"Energy measured with: {', '.join(facts['energy_methods'])}.")
    if facts["devices"]:
        lines.append(f"Device(s): {', '.join(facts['devices'])}.")
    return "\n\n".join(lines)


def say_excluded(excluded: pd.DataFrame) -> str:
    if not len(excluded):
        return "No run failed or was incompatible: every run record is scored."
    counts = excluded["status"].value_counts()
    head = ", ".join(f"{n} {s}" for s, n in counts.items())
    lines = [f"**Left out of the scores: {plural(len(excluded), 'run')}** ({head}). Incompatible runs are model/input-size "
             "combinations the model cannot take; failed runs stopped with an error."]
    reasons = excluded.groupby(["status", "reason"]).size().sort_values(ascending=False).head(5)
    lines.append("Most common reasons:\n" + _bullets([f"{s}: {r} ({n}×)" for (s, r), n in reasons.items()]))
    return "\n\n".join(lines)


def say_best(best: pd.DataFrame, scored: pd.DataFrame, by: str = "pepr_e", cost: str = "energy_kwh") -> str:
    """Per experiment: the PePR pick against the most accurate model, and what each costs."""
    if not len(best) or f"top_{by}" not in best.columns:
        return ""
    lines = []
    same = 0
    gaps, ratios = [], []
    for _, row in best.iterrows():
        exp = row["experiment"]
        g = scored[scored["experiment"] == exp].set_index("model")
        pick, acc_best = row[f"top_{by}"], row["top_test_acc"]
        if row["models"] < 2:
            lines.append(f"`{exp}`: one model ({acc_best}{_floor_flag(g, acc_best)}), accuracy "
                         f"{fmt(g.loc[acc_best, 'test_acc'])}; no {label(by)} ranking with one model.")
            continue
        flag = _floor_flag(g, pick)
        if pick == acc_best:
            same += 1
            lines.append(f"`{exp}`: **{pick}** is both the most accurate (accuracy {fmt(g.loc[pick, 'test_acc'])}) "
                         f"and the top {label(by)} of {int(row['models'])} models{flag}.")
            continue
        gap = g.loc[acc_best, "test_acc"] - g.loc[pick, "test_acc"]
        ratio = (g.loc[acc_best, cost] / g.loc[pick, cost]
                 if cost in g.columns and g.loc[pick, cost] and np.isfinite(g.loc[pick, cost]) else np.nan)
        gaps.append(gap)
        if np.isfinite(ratio):
            ratios.append(ratio)
        cost_part = f", using {fmt(ratio, 2)}× the {label(cost)}" if np.isfinite(ratio) else ""
        lines.append(f"`{exp}`: the top {label(by)} is **{pick}**{flag} (accuracy {fmt(g.loc[pick, 'test_acc'])}, "
                     f"{fmt_params(g.loc[pick].get('num_params', np.nan))}); the most accurate is **{acc_best}** "
                     f"(accuracy {fmt(g.loc[acc_best, 'test_acc'])}, {fmt_params(g.loc[acc_best].get('num_params', np.nan))})"
                     f", {fmt(gap, 2)} more accurate{cost_part}.")
    multi = int((best["models"] >= 2).sum())
    head = ""
    if multi:
        head = (f"In {same} of {plural(multi, 'experiment')} with several models the most accurate model is also "
                f"the top {label(by)}.")
        if gaps:
            head += (f" Elsewhere the {label(by)} pick gives up a median {fmt(float(np.median(gaps)), 2)} test "
                     f"accuracy" + (f" for {fmt(float(np.median(ratios)), 2)}× less {label(cost)}" if ratios else "")
                     + " than the most accurate model.")
    return head + "\n\n" + _bullets(lines)


def _floor_flag(models: pd.DataFrame, model: str) -> str:
    """" (⚠ does not beat its majority-class floor)" for a model that learned nothing useful, else ""."""
    if "above_floor" not in models.columns or model not in models.index:
        return ""
    return " (⚠ does not beat its majority-class floor)" if models.loc[model, "above_floor"] == 0 else ""


def say_floor(scored: pd.DataFrame) -> str:
    """Which models do not beat their floor: a model that does not is never a winner without this flag."""
    if "above_floor" not in scored.columns or scored["above_floor"].isna().all():
        return ("The records hold no majority-class floor (written before `majority_acc` was recorded): "
                "no model is checked against it.")
    below = scored[scored["above_floor"] == 0]
    head = ("A model **beats its floor** when its test accuracy is above `majority_acc` (always predicting the "
            "training split's most frequent class) in every seed *and* its predictions agree with the labels "
            "beyond chance (Cohen's κ > 0, one-sided p < 0.05; a coin flip can beat a majority guess on a "
            "balanced test split, but not this). ")
    if not len(below):
        return head + f"All {plural(len(scored), 'model-experiment')} beat their floor."
    lines = [f"`{r['experiment']}`: {r['model']} (accuracy {fmt(r['test_acc'])}, floor {fmt(r.get('majority_acc'))}, "
             f"κ = {fmt(r.get('test_kappa'), 2)})" for _, r in below.sort_values(["experiment", "model"]).iterrows()]
    return (head + f"**{plural(len(below), 'model-experiment')} of {len(scored)} do not**, and are flagged ⚠ "
            "wherever they are named; they are never recommended. The chance-corrected PePR (P = κ clipped at 0) "
            "scores them near 0:\n\n" + _bullets(lines))


def say_verdicts(verdicts: pd.DataFrame, by_seed: pd.DataFrame | None = None, *, terms: bool = True) -> str:
    """The verdict on each of the paper's claims in one sentence, whether it survives Holm's correction
    and whether it holds in every seed; ``terms`` opens with :func:`say_verdict_terms` (the report folds
    the two apart)."""
    from ..analysis.verdicts import DECIDED, UNTESTED

    lines = []
    for i, v in verdicts.reset_index(drop=True).iterrows():
        if v["verdict"] in UNTESTED:
            lines.append(f"{v['claim']}: **{v['verdict']}** ({v['why']}).")
            continue
        held = ""
        if by_seed is not None and len(by_seed) > i and any(c.startswith("seed ") for c in by_seed.columns):
            held = (" It holds in every seed subset." if bool(by_seed.loc[i, "holds in every seed"]) else
                    " It does **not** hold in every seed subset: " + ", ".join(
                        f"{c}: {by_seed.loc[i, c]}" for c in by_seed.columns if c.startswith("seed ")) + ".")
        holm = ""
        if v["verdict"] in DECIDED:
            holm = (" It survives Holm's correction" if bool(v.get("survives_holm")) else
                    " It does **not** survive Holm's correction") + f" (adjusted {fmt_p(v.get('p_holm'))})."
        lines.append(f"{v['claim']}: **{v['verdict']}**: {v['measure']}, Hodges-Lehmann estimate "
                     f"{_signed(v['estimate'])} [95% interval {fmt(v['ci_lo'])}, {fmt(v['ci_hi'])}] over "
                     f"{int(v['n'])} {v['units']} in {int(v['clusters'])} contexts ({int(v['seeds'])} seed(s) each), "
                     f"Wilcoxon {fmt_p(v['p'])}, r = {fmt(v['effect_r'], 2)}, margin {fmt(v['margin'])}"
                     + (f"; {v['why']}" if v["why"] else "") + "." + holm + held)
    return (say_verdict_terms() + "\n\n" if terms else "") + _bullets(lines)


def say_verdict_terms() -> str:
    """How the verdicts are reached and what each verdict word means (the vocabulary)."""
    from ..analysis.verdicts import VERDICTS

    legend = "; ".join(f"*{k}*: {d}" for k, d in VERDICTS.items())
    return ("Each claim of the paper tested on these runs, only on models that beat their majority-class floor. "
            "The estimate is the Hodges-Lehmann estimate of the units' seed means (what the signed-rank test "
            "tests; its sign gives the direction with the rank-biserial r); intervals resample contexts, the "
            "units within them and their seeds. Holm's correction runs over the claims of this table. "
            f"Verdicts: {legend}.")


def say_constant_predictors(ok: pd.DataFrame, tol: float = 1e-3) -> str:
    """Where runs predict one class for every image (|Cohen's kappa| <= ``tol``), per experiment: the
    sentences a README states about collapsed runs come from here, never typed by hand."""
    if "test_kappa" not in ok.columns or ok["test_kappa"].isna().all():
        return "No Cohen's kappa recorded: constant predictors cannot be told apart."
    const = ok.assign(constant=ok["test_kappa"].abs() <= tol)
    counts = const.groupby("experiment", sort=True)["constant"].agg(["sum", "count"])
    hit = counts[counts["sum"] > 0]
    if not len(hit):
        return f"No run is a constant predictor (|κ| ≤ {tol:g}) in any experiment."
    lines = [f"`{e}`: {int(r['sum'])} of {plural(int(r['count']), 'run')} "
             f"({', '.join(sorted(set(const.loc[(const['experiment'] == e) & const['constant'], 'model'].astype(str))))})"
             for e, r in hit.iterrows()]
    return (f"Runs that predict one class for every test image (|κ| ≤ {tol:g}), by experiment; every other "
            "experiment has none:\n\n" + _bullets(lines))


def say_at_floor(floor: pd.DataFrame, ok: pd.DataFrame) -> str:
    """The model-experiments left out of every verdict because they did not learn (claim_units.at_floor)."""
    total = ok.groupby(["experiment", "model"]).ngroups if len(ok) else 0
    if not len(floor):
        return f"**At floor:** none; all {plural(total, 'model-experiment')} learned and give evidence to the verdicts."
    by_exp = floor.groupby("experiment", sort=True)["model"].apply(lambda m: ", ".join(m))
    return (f"**At floor: {len(floor)} of {plural(total, 'model-experiment')}** did not beat their majority-class "
            "floor in every seed, so they give no evidence to any verdict above (they are not counted as "
            "against a claim either; each verdict says how many of its units they removed):\n\n"
            + _bullets([f"`{e}`: {m}" for e, m in by_exp.items()]))


def say_data_efficiency(curve: pd.DataFrame, smallest: pd.DataFrame) -> str:
    """At which training fraction each regime matches scratch on all the data (data_curve.data_efficiency)."""
    if not len(curve):
        return ("No data-efficiency curve: no dataset has pretrained and scratch runs at 3 or more training "
                "fractions for 2 or more architectures.")
    lines = []
    for (ds, size, regime), g in curve.groupby(["dataset", "size", "regime"], sort=True):
        hit = smallest[(smallest["dataset"] == ds) & (smallest["size"] == size) & (smallest["regime"] == regime)]
        at = (f"matches it from fraction {fmt(hit['smallest_matching_fraction'].iloc[0])}" if len(hit)
              else "matches it at no fraction run")
        points = "; ".join(f"{fmt(r['fraction'])}: {_signed(r['gap'])} [{fmt(r['ci_lo'])}, {fmt(r['ci_hi'])}] "
                           f"({int(r['models'])} models)" for _, r in g.sort_values("fraction").iterrows())
        lines.append(f"{ds}, {int(size)} px, {regime}: {at} ({points}).")
    return (f"Test accuracy minus scratch on all the data, paired by model and seed over the models that learned, "
            f"with 95% intervals; a fraction *matches* when its interval lies above -{fmt(curve['margin'].iloc[0])}:"
            "\n\n" + _bullets(lines))


def say_params_trend(scored: pd.DataFrame, cols: Sequence[str] = ("test_acc", "pepr_e")) -> str:
    """Whether bigger models score higher: Spearman's rho against parameter count per experiment."""
    from scipy import stats

    if "num_params" not in scored.columns:
        return ""
    lines = []
    for exp, g in scored.groupby("experiment", sort=True):
        parts = []
        for c in cols:
            sub = g[["num_params", c]].dropna() if c in g.columns else pd.DataFrame()
            if len(sub) >= 3 and sub["num_params"].nunique() > 1 and sub[c].nunique() > 1:
                res = stats.spearmanr(sub["num_params"], sub[c])
                parts.append(f"{label(c)} ρ = {fmt(res.statistic, 2)} ({fmt_p(res.pvalue)})")
        if parts:
            lines.append(f"`{exp}` (n = {len(g)}): " + "; ".join(parts))
    if not lines:
        return "Too few models per experiment (fewer than 3) to relate scores to model size."
    return ("Rank correlation with the number of parameters (Spearman's ρ; positive: bigger models score "
            "higher). The paper found accuracy roughly flat in model size and PePR falling with it:\n\n"
            + _bullets(lines))


def say_paired(tests: pd.DataFrame, alpha: float = 0.05) -> str:
    """One bullet per comparison and value: direction, size, both tests, and the caveats."""
    if not len(tests):
        return ("No paired comparison is possible: the runs contain no pretrained and scratch experiments, "
                "or no two training fractions, sharing models.")
    lines, untestable, powerless = [], {}, set()
    for _, t in tests.iterrows():
        what = label(t["value"])
        if t["n_pairs"] < 2:
            untestable.setdefault(t["comparison"], t["note"])
            continue
        if "cannot reach" in str(t["note"]) and not any(
                np.isfinite(p) and p < alpha for p in (t["wilcoxon_p"], t["ttest_p"])):
            powerless.add(t["comparison"])
            continue
        sig = [name for name, p in (("Wilcoxon", t["wilcoxon_p"]), ("t-test", t["ttest_p"]))
               if np.isfinite(p) and p < alpha]
        verdict = (f"significant at {alpha} ({' and '.join(sig)})" if sig else f"not significant at {alpha}")
        lines.append(
            f"{t['comparison']}, {what}: mean difference {_signed(t['mean_diff'])} "
            f"({fmt(t['mean_a'])} vs {fmt(t['mean_b'])}) over {int(t['n_pairs'])} {pair_unit(t)}; "
            f"{int(t['a_better'])} higher, {int(t['b_better'])} lower, {int(t['ties'])} tied. "
            f"Wilcoxon {fmt_p(t['wilcoxon_p'])}, rank-biserial r = {fmt(t['rank_biserial'], 2)}; "
            f"paired t-test {fmt_p(t['ttest_p'])}, d_z = {fmt(t['cohen_dz'], 2)}: **{verdict}**"
            + (f" ({t['note']})" if t["note"] else "") + ".")
    tail = [f"{c}: {note}." for c, note in untestable.items()]
    if powerless:
        tail.append(f"{plural(len(powerless), 'comparison')} with fewer than 6 pairs each ("
                    + "; ".join(sorted(powerless)) + ") cannot reach p < 0.05 with a Wilcoxon test by construction; "
                    "their numbers are in the table, and the pooled comparisons carry the evidence.")
    return ("Paired by model (each model against itself), differences are first condition minus second; PePR is "
            "compared on one scale per pair of experiments (min-max over the union of both):\n\n"
            + _bullets(lines + tail))


def _signed(x) -> str:
    return "–" if not np.isfinite(x) else ("+" if x > 0 else "") + fmt(x)


def say_pareto(front: pd.DataFrame, scored: pd.DataFrame, by: str = "pepr_e") -> str:
    if not len(front):
        return "No experiment has both accuracy and energy recorded: no Pareto front."
    lines = []
    for exp, f in front.groupby("experiment", sort=True):
        n = int((scored["experiment"] == exp).sum())
        top = scored[scored["experiment"] == exp].sort_values(by, ascending=False)["model"].iloc[0] \
            if by in scored.columns else None
        names = ", ".join(f["model"].astype(str).head(6)) + (" …" if len(f) > 6 else "")
        lines.append(f"`{exp}`: {len(f)} of {n} models are on the front ({names}); the top {label(by)} "
                     f"({top}) is {'on' if top in set(f['model']) else 'NOT on'} it.")
    return ("The accuracy–energy Pareto front holds the models no other model beats on both accuracy and "
            "energy; every other model is dominated. A top PePR model is always on the front (a dominating "
            "model has at least its P and at most its R), so PePR picks one point of the front -- the one "
            "its 1/(1+R_n) exchange rate prefers:\n\n" + _bullets(lines))


def say_agreement(agree: pd.DataFrame, intro: str) -> str:
    """Kendall's tau between pairs of rankings, per experiment."""
    if not len(agree):
        return intro + " Not computable: one of the rankings is missing from these results (e.g. no test AUC recorded)."
    agree = agree.dropna(subset=["tau"])
    if not len(agree):
        return intro + " Not computable here (fewer than two models with distinct values per experiment)."
    lines = [f"`{r[agree.columns[0]]}`: {label(r['x'])} vs {label(r['y'])}: τ = {fmt(r['tau'], 2)} "
             f"({fmt_p(r['p'])}, n = {int(r['n'])})" for _, r in agree.iterrows()]
    mean = agree.groupby("pair")["tau"].mean()
    summary = "; ".join(f"{p}: mean τ = {fmt(t, 2)}" for p, t in mean.items())
    return intro + f" Over experiments: {summary}.\n\n" + _bullets(lines)


def say_reference(reference: Mapping[str, float], given: bool, resources: Mapping[str, str]) -> str:
    from ..analysis.columns import UNITS

    refs = ", ".join(f"{resources[k]} = {fmt(v)} {UNITS.get(resources[k], '')}" for k, v in reference.items())
    source = "as given" if given else "the study-wide medians, since no reference was given"
    return (f"Fixed-reference PePR uses R_n = R / R_ref with {refs} ({source}). Unlike min-max, the same "
            "model keeps the same score whichever other models ran, and scores are comparable across "
            "experiments and studies that use the same reference; a model using R_ref scores P/2.")


def say_seeds(summary: pd.DataFrame, stability: pd.DataFrame, facts: Mapping) -> str:
    lines = []
    if facts["single_seed"]:
        lines.append("Single seed: no intervals over seeds can be given.")
    elif len(summary):
        widths = (summary["test_acc_hi"] - summary["test_acc_lo"]).dropna()
        if len(widths):
            lines.append(f"The 95% interval of test accuracy over seeds is {fmt(widths.median(), 2)} wide for the "
                         f"median model (widest: {fmt(widths.max(), 2)}): differences between models smaller than "
                         "that are within seed noise.")
    if len(stability):
        for _, r in stability[np.isfinite(stability["p_stays_top"].astype(float))].iterrows():
            other = (f"; otherwise most often {r['other_winner']} ({fmt(100 * r['p_other_winner'], 2)}%)"
                     if isinstance(r["other_winner"], str) and r["p_other_winner"] > 0 else "")
            lines.append(f"`{r['experiment']}`, ranked by {label(r['by'])}: **{r['top_model']}** stays on "
                         f"top in {fmt(100 * r['p_stays_top'], 3)}% of bootstrap replicates (resampling "
                         f"{r['resampled']}){other}.")
        skipped = stability[~np.isfinite(stability["p_stays_top"].astype(float))]
        for note, g in skipped.groupby("note", sort=False):
            exps = sorted(g["experiment"].unique())
            where = (f"`{exps[0]}`" if len(exps) == 1 else
                     "every experiment" if len(exps) == stability["experiment"].nunique() else
                     f"{len(exps)} experiments ({', '.join(f'`{e}`' for e in exps)})")
            hint = (" -- several seeds, or per-sample test predictions (`predictions.npz` in the run folder), "
                    "would allow it" if "nothing to resample" in note else "")
            lines.append(f"Top-rank bootstrap in {where}: {note}{hint}.")
    return _bullets(lines) if lines else ""


def say_auc(agree: pd.DataFrame, swing: pd.DataFrame, histories: pd.DataFrame | None = None) -> str:
    parts = []
    if len(swing):
        for _, r in swing.iterrows():
            acc, auc = r.get("median_test_acc_swing", np.nan), r.get("median_test_auc_swing", np.nan)
            ratio = acc / auc if np.isfinite(acc) and np.isfinite(auc) and auc > 0 else np.nan
            parts.append(f"{r['dataset']}: between neighbouring epochs test accuracy moves by {fmt(acc, 2)} and "
                         f"test AUC by {fmt(auc, 2)} (medians over {plural(int(r['runs']), 'run')}"
                         + (f"; accuracy moves {fmt(ratio, 2)}× as much)" if np.isfinite(ratio) else ")"))
    text = ("The paper scores the accuracy after the last epoch, which can swing from one epoch to the next; "
            "AUC, a threshold-free measure, is steadier.")
    if parts:
        text += "\n\n" + _bullets(parts)
    elif histories is not None and len(histories):
        text += " (Every run here trained for a single epoch, so the swing between epochs cannot be measured.)"
    else:
        text += " (No per-epoch histories were found next to the records, so the swing is not measured here.)"
    return text + "\n\n" + say_agreement(agree, "Agreement between PePR-E with accuracy and with AUC as P:")


def say_recommend(rec: pd.DataFrame, budget: Mapping[str, float], derived: bool) -> str:
    if not len(rec):
        return "No model-level results to recommend from."
    from ..analysis.columns import UNITS

    label = ", ".join(f"{c} ≤ {fmt(v)} {UNITS.get(c, '')}".strip() for c, v in budget.items())
    head = (f"Budget: {label}" + (" (the study's median; set `budget` to state your own)" if derived else "")
            + ". Among all scored runs of each dataset, the most accurate model within the budget:")
    lines = []
    for _, r in rec.iterrows():
        if r["within_budget"]:
            gap = (f", giving up {fmt(r['acc_given_up'], 2)} accuracy against the best overall "
                   f"({r['best_overall_model']})" if r["acc_given_up"] and r["acc_given_up"] > 0 else
                   " -- also the most accurate overall")
            lines.append(f"{r['dataset']}: **{r['model']}** (`{r['experiment']}`), accuracy {fmt(r['test_acc'])}; "
                         f"{int(r['within_budget'])} of {int(r['candidates'])} candidates fit{gap}.")
        else:
            lines.append(f"{r['dataset']}: {r['note']}" + (f" -- {r['model']} (`{r['experiment']}`)"
                                                           if isinstance(r.get("model"), str) else "") + ".")
    return head + "\n\n" + _bullets(lines)


def say_beside_paper(agreement: pd.DataFrame | None, note: str, available: bool = True) -> str:
    """How well our rankings agree with the paper's on the models both ran (Kendall's tau with its
    interval, per experiment and measure), or why there is nothing to compare (``available``: whether the
    paper's rows could be read; ``note`` says why not)."""
    if agreement is None or not len(agreement):
        return (f"No ranking beside the paper's: {note}." if not available else
                "No ranking beside the paper's: none of our experiments shares two or more models with the "
                "paper's experiment at the same dataset and training fraction.")
    lines = []
    for _, a in agreement.iterrows():
        strength = ("agree" if a["ci_lo"] > 0 else "disagree" if a["ci_hi"] < 0 else "cannot be told apart from no relation")
        lines.append(f"{a['experiment']} beside the paper's {a['paper_experiment']} ({int(a['models'])} models in both), "
                     f"ranked by {a['measure']}: Kendall's τ = {fmt(a['tau'], 2)} [{fmt(a['ci_lo'], 2)}, "
                     f"{fmt(a['ci_hi'], 2)}] ({fmt_p(a['p'])}): the two rankings {strength}.")
    return ("Ranks are taken among the shared models only, and PePR is recomputed on each side over those "
            "models (one normalisation per side); the interval resamples the shared models.\n\n" + _bullets(lines))


def say_questions(questions: pd.DataFrame) -> str:
    """One line per question: how many experiments/comparisons answer it which way."""
    if not len(questions):
        return "None of the paper's questions can be asked of these runs."
    lines = []
    for q, g in questions.groupby("question", sort=False):
        counts = g["answer"].value_counts()
        tally = ", ".join(f"{a} in {n}" for a, n in counts.items())
        lines.append(f"**{q}** {tally} (of {plural(len(g), 'case')}).")
    return ("Each question asked of every experiment (or paired comparison) where the runs allow it; "
            "\"yes\" and \"reverse\" need p < 0.05, the evidence column gives the numbers:\n\n" + _bullets(lines))
