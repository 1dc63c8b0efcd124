"""The report's first screen: the study in one line, the verdicts as a short table, the headline caption.

A reader who opens the report sees the answer without scrolling (at 1400 x 900 px): what was run, what
each of the paper's claims came to, by how much (in the claim's own unit, with its 95% interval), how
sure after Holm's correction, and why, in one plain line. Every statistic behind it stays in the
verdict table (``tables/verdicts.csv``) and in the folded evidence below it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..analysis.columns import label
from ..analysis.formatting import energy_split, fmt, fmt_p, plural

#: The short table's columns: at most six, so it fits the first screen.
SUMMARY_COLUMNS = ("claim", "verdict", "effect [95% interval]", "Holm p", "why, in plain words")


def say_study_line(facts: Mapping, resources: Mapping[str, str]) -> str:
    """The study in one line: runs, models, datasets and sizes, experiments, seeds, and whether energy
    was measured or estimated (facts: :func:`pepr_utils.analysis.results.study_facts`)."""
    left_out = facts["n_runs"] - facts["n_ok"]
    runs = f"**{facts['n_ok']} runs scored**" + (f" of {facts['n_runs']} ({left_out} left out: failed, "
                                                  "incompatible or unscored)" if left_out else "")
    sizes = facts.get("sizes") or []
    where = ", ".join(facts["datasets"]) + (f" at {', '.join(str(s) for s in sizes)} px" if sizes else "")
    seeds = facts.get("seeds") or []
    seed_text = (f"seed {seeds[0]}" if len(seeds) == 1 else f"seeds {', '.join(str(s) for s in seeds)}"
                 if seeds else plural(facts["max_seeds"], "seed"))
    if "e" not in resources:
        energy = "energy not recorded"
    elif split := energy_split(facts):
        energy = f"energy **partly estimated** ({split})"
    elif facts["energy_estimated"]:
        energy = "energy **estimated**, not metered"
    else:
        energy = "energy **measured**" + (f" ({', '.join(facts['energy_methods'])})" if facts["energy_methods"] else "")
    return (f"{runs} · {plural(len(facts['models']), 'model')} · {where} · "
            f"{plural(len(facts['experiments']), 'experiment')} · {seed_text} · {energy}.")


def short_claim(claim: str) -> str:
    """A claim without its parenthesis: ``Small models win on PePR-E``."""
    return str(claim).split(" (")[0]


def effect_text(row: Mapping) -> str:
    """The estimate and its 95% interval in the claim's own unit, read from its measure: accuracy in
    points (+4.4 points), a size trend as Spearman's rho, a cost as a ratio (x0.75); '–' when untested."""
    est, lo, hi = (float(row.get(k, np.nan)) if row.get(k) is not None else np.nan for k in ("estimate", "ci_lo", "ci_hi"))
    if not np.isfinite(est):
        return "–"
    measure = str(row.get("measure", ""))
    if re.match(r"(test|balanced) accuracy", measure):
        return f"{_signed(100 * est)} accuracy points [{fmt(100 * lo)}, {fmt(100 * hi)}]"
    if measure.startswith("Spearman rho"):
        return f"ρ = {_signed(est)} [{fmt(lo)}, {fmt(hi)}]"
    cost = re.match(r"log (.+?) to reach", measure)
    if cost or measure.startswith("log "):
        what = cost.group(1) if cost else "ratio"
        return f"×{fmt(np.exp(est))} the {what} [{fmt(np.exp(lo))}, {fmt(np.exp(hi))}]"
    return f"{_signed(est)} [{fmt(lo)}, {fmt(hi)}]"


def _signed(x: float) -> str:
    return "–" if not np.isfinite(x) else ("+" if x > 0 else "") + fmt(x)


def plain_why(row: Mapping, seeds: str = "") -> str:
    """One plain line of why: what the test showed, whether Holm's correction keeps it, whether the
    seeds agree (``seeds``: a phrase from :func:`verdict_summary`); the full reason stays in ``why``."""
    verdict, why = str(row.get("verdict", "")), str(row.get("why", ""))
    share = re.search(r"(\d+) of (\d+) units the claimed way", why)
    if verdict == "supported":
        text = (f"{share.group(1)} of {share.group(2)} units point the claimed way, beyond chance" if share
                else "significant the claimed way")
    elif verdict == "reversed":
        text = "significant, but the opposite way to the claim"
    elif verdict == "contradicted":
        text = "any effect is smaller than the claimed size" if "equivalence" in why or "no effect" in why else \
            "worse than the margin the claim allows"
    elif verdict == "inconclusive":
        text = "too uncertain: the interval holds both no effect and the claimed size"
        detectable, paper = (float(row.get(k, np.nan)) for k in ("detectable", "paper_effect"))
        if np.isfinite(detectable):
            text += f"; the design detects effects of {fmt(detectable)} or more"
            if np.isfinite(paper):  # the rule of paper_compare.with_paper_effects
                text += (f", so it could have seen the paper's ({paper:+.3g})" if abs(paper) >= detectable
                         else f", larger than the paper's own ({paper:+.3g})")
    elif verdict.startswith("not robust"):
        text = "test accuracy and balanced accuracy as P disagree"
    elif verdict == "not testable (models at their floor)":
        text = "too few models beat their majority-class floor to test it"
    else:
        text = why.split(";")[0] or "not tested"
    if verdict in ("supported", "reversed", "contradicted") and "survives_holm" in row:
        text += "; holds after Holm's correction" if bool(row["survives_holm"]) else "; but not after Holm's correction"
    return (text + seeds)[:1].upper() + (text + seeds)[1:] + "."


def verdict_summary(verdicts: pd.DataFrame, by_seed: pd.DataFrame | None = None) -> pd.DataFrame:
    """The first screen's table (:data:`SUMMARY_COLUMNS`): one row per claim of ``verdicts``
    (:func:`~pepr_utils.analysis.verdicts.verdict_table`), with ``by_seed``
    (:func:`~pepr_utils.analysis.verdicts.verdicts_by_seed`) saying whether each seed agrees."""
    seed_cols = [c for c in by_seed.columns if c.startswith("seed ")] if by_seed is not None else []
    rows = []
    for i, v in verdicts.reset_index(drop=True).iterrows():
        seeds = ""
        if len(seed_cols) > 1 and by_seed is not None and i < len(by_seed) and v["verdict"] != "not testable":
            seeds = ("; the same in every seed" if bool(by_seed.loc[i, "holds in every seed"])
                     else "; not the same in every seed")
        p_holm = v.get("p_holm", np.nan)
        rows.append({SUMMARY_COLUMNS[0]: short_claim(v["claim"]), SUMMARY_COLUMNS[1]: v["verdict"],
                     SUMMARY_COLUMNS[2]: effect_text(v),
                     SUMMARY_COLUMNS[3]: fmt_p(p_holm).removeprefix("p = ").removeprefix("p ") if np.isfinite(p_holm)
                     else "–",
                     SUMMARY_COLUMNS[4]: plain_why(v, seeds)})
    return pd.DataFrame(rows, columns=list(SUMMARY_COLUMNS))


def say_headline(paper_note: str, paper_drawn: bool, score: str = "pepr_e", perf: str = "test_acc") -> str:
    """The headline figure's caption: what to look at, and which of the paper's rows it draws (``paper_note``,
    from :func:`~pepr_utils.analysis.headline.paper_beside`) or why it draws none."""
    paper = (f"grey: {paper_note}, with a dashed trend" if paper_drawn else
             f"the paper's rows are not drawn: {paper_note}")
    return (f"**Do bigger models score higher?** {label(perf).capitalize()} (left) and {label(score)} (right) "
            "against model size (log scale); each point is one model in one experiment (seed mean), "
            f"{label(score)} normalised within its experiment. Blue: our runs, with their least-squares trend; "
            f"{paper}. ρ in each title is Spearman's rank correlation with size. Look at the slopes: the paper "
            f"found accuracy roughly flat in size and {label(score)} falling with it.")
