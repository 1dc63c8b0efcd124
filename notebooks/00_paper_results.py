# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
#     formats: ipynb,py:percent
#     notebook_metadata_filter: kernelspec,jupytext,-jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (pepr)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 00 · The PePR paper's results, reproduced from its published data, and an audit of that data
#
# Selvan et al. (2024), *Equity through Access: A Case for Small-scale Deep Learning*, trained 131 timm
# models on three medical-imaging datasets (DermaMNIST, LIDC-IDRI, PneumoniaMNIST) in eight experiments
# and scored each with **PePR** = P / (1 + R_n): the test accuracy P after 10 epochs, discounted by a
# resource R (energy, CO2, training time, GPU memory) min-max normalised within the experiment.
#
# This notebook
#
# 1. loads the authors' published raw results (pinned commit, sha256-checked; see `pepr_utils.paper.reference`);
# 2. recomputes PePR-E/C/T/M with `pepr_utils.score` -- our one PePR implementation -- and checks it
#    equals the published scores on every row;
# 3. regenerates the paper's tables, figures and tests;
# 4. audits the published numbers: the same energy and CO2 values recur for one model across
#    different experiments, which separate training runs cannot produce, and we measure how much the
#    paper's rankings and conclusions depend on those rows.
#
# Everything is written under `out_dir` by `pepr_utils.report.Report`, as in `04_analysis`: figures as PNG
# and PDF in `figures/`, tables as CSV and Markdown in `tables/`, and `checks.json` with the numbers the
# tests verify.

# %%
# On Google Colab: install pepr_utils, at this notebook's release, into this session. Colab's own torch
# and Jupyter stack stay as they are; only the study's libraries get the lock's versions
# (tools/colab_install.py). A regular install, so the next cell imports it without a restart; once
# pepr_utils imports, and anywhere but Colab, this cell does nothing. Same cell in every notebook.
import importlib, importlib.util, os, subprocess, sys
if "google.colab" in sys.modules and importlib.util.find_spec("pepr_utils") is None:
    src = os.path.expanduser("~/pepr")  # absolute: a rerun from any folder finds this clone
    if not os.path.isdir(src):
        repo = os.environ.get("PEPR_REPO", "https://github.com/pepr-study/pepr")
        ref = os.environ.get("PEPR_REF", "v0.1.0")  # the release tag (PEPR_REF=main: the latest code)
        subprocess.run(["git", "clone", "-q", "--branch", ref, repo, src], check=True)  # whole: pip clones it again
    subprocess.run([sys.executable, f"{src}/tools/colab_install.py", src], check=True)
    importlib.invalidate_caches()

# %% tags=["parameters"]
reference_dir = None  # folder with the published CSVs; None: PEPR_REFERENCE_DIR, else download + cache
out_dir = "../outputs/paper"  # figures, tables and checks.json go here

# %%
from pathlib import Path

import pandas as pd
from IPython.display import Markdown, display

from pepr_utils import analysis as an
from pepr_utils import paper
from pepr_utils.fileio import atomic_write_json
from pepr_utils.report import Report

pd.set_option("display.float_format", "{:.4g}".format)
pd.set_option("display.max_colwidth", 90)
out = Path(out_dir).resolve()
report = Report(out)  # the one writer of figures (PNG + PDF) and tables (CSV + Markdown), shown as they go
figure, table = report.figure, report.table


# %% [markdown]
# ## 1 · Load the published results
#
# `all_results.csv` has one row per model and experiment (131 x 8 = 1048): parameter count, GPU memory
# reserved (`memR`, GB), training energy (`energy`, kWh) and emissions (`co2`, g) measured with
# carbontracker, the duration of the last epoch (`train_time`, s) and the test accuracy after each of the
# 10 epochs (`test_00` ... `test_09`). `full_data_pepr_dataset_level.csv` adds the authors' normalised
# resources and PePR scores. The experiments differ in dataset, pretraining and training-set fraction:

# %%
results = paper.load_results(reference_dir)
published = paper.load_published_scores(reference_dir)
models = paper.load_models(reference_dir)
assert len(results) == len(published) == 1048 and results["model"].nunique() == len(models) == 131
table(paper.experiment_overview(results), "table_experiments")

# %% [markdown]
# Only `derma` trains from scratch; the other experiments start from ImageNet weights. The files do not
# name the training fractions: "small" is the paper's 10 %, and `derma_smallest` is smaller still (its
# last epoch takes ~2.4 s, about the ~2 s the test pass alone takes, which fits 1 %).

# %% [markdown]
# ## 2 · Recompute PePR and compare with the published scores
#
# PePR-E/C/T/M use energy, CO2, last-epoch training time and reserved GPU memory, min-max normalised
# within each experiment, with P = `test_09`. The comparison matches rows on (experiment, model).

# %%
ours = paper.recompute_scores(results)
agreement = paper.score_differences(ours, published)
table(agreement, "table_score_agreement")
max_abs_diff = {row.score: row.max_abs_diff for row in agreement.itertuples()}
assert agreement["rows"].eq(1048).all()
assert max(max_abs_diff.values()) < 1e-9, max_abs_diff
print("max abs difference per score:", max_abs_diff)

# %% [markdown]
# The profile of the score: at equal accuracy, the cheapest model of an experiment keeps its full P
# and the most expensive one gets P/2. A model must be ~30 % more accurate to justify the maximal
# resource.

# %%
figure(an.pepr_profile(resource="E"), "fig_pepr_profile")

# %% [markdown]
# ## 3 · The paper's results
#
# ### Top-5 models by PePR-E per experiment (the paper's Table 2)
# The five best models by PePR-E, then the most accurate model with its PePR-E rank (units as in the
# paper: parameters in millions, energy in Wh). The rows match the authors' `results_table.ipynb`, except
# one tie: in `pneumonia_small`, `resnext50d_32x4d` and `cs3edgenet_x` share the best accuracy (0.9342);
# the authors' sort showed `cs3edgenet_x`, we break ties by the higher PePR-E.

# %%
top5 = paper.top_k(ours, "pepr_e", k=5)
table(paper.paper_top_table(top5), "table_top5_pepr_e")

# %% [markdown]
# ### Resources, accuracy and PePR against model size (Figs. 4, 5c, 5d and the appendix)
# As in the paper, each point is one model's mean over the eight experiments; colour marks the
# "efficient" architectures (designed for low resources, from `model_names.csv`). Parameter axes are
# logarithmic. (The authors' `paper_plots.py` passes the flags in `model_names.csv` order, sorted by size,
# next to means sorted by model name, so the paper's colours do not follow the models; here each model
# carries its own flag.)

# %%
means = paper.model_means(ours, ["energy", "co2", "train_time", "memR", "test_09",
                                 "pepr_e", "pepr_c", "pepr_t", "pepr_m"])
means["design"] = means["efficient"].map({1: "efficient", 0: "other"})
figure(an.scatter_vs_params(means, "energy", x="num_param", hue="design", logy=True,
                               ylabel="training energy, mean over experiments (kWh)"),
       "fig_energy_vs_params")

# %%
figure(an.scatter_vs_params(means, "test_09", x="num_param", hue="design", trend=True,
                               ylabel="test accuracy, mean over experiments"), "fig_test_acc_vs_params")

# %%
figure(an.scatter_vs_params(means, "pepr_e", x="num_param", hue="design", trend=True,
                               ylabel="PePR-E, mean over experiments"), "fig_pepr_e_vs_params")

# %%
figure(an.metrics_vs_params(means, ["pepr_c", "pepr_m", "pepr_t"], x="num_param", hue="design", trend=True,
                               ylabels=["PePR-C (CO$_2$)", "PePR-M (GPU memory)", "PePR-T (training time)"]),
       "fig_pepr_cmt_vs_params")

# %% [markdown]
# Per experiment, PePR-E falls with model size in all eight experiments (colour: CNN or other
# architecture):

# %%
figure(an.scatter_vs_params(ours, "pepr_e", x="num_param", hue="type", facet="experiment", trend=True,
                               facet_order=list(paper.EXPERIMENTS)), "fig_pepr_e_vs_params_by_experiment")

# %% [markdown]
# ### Pretraining and training-set size (Fig. 5a, 5b)
# Per model: test accuracy pretrained (`derma_pt`) vs from scratch (`derma`), and the mean over the three
# datasets with 100 % vs 10 % of the training data. The authors' `paper_plots.py` tested both with an
# unpaired two-sample t-test (`scipy.stats.ttest_ind`) and reported *p < 0.001*. Each model appears in both
# groups, so we report the paired t-test and the Wilcoxon signed-rank test beside it.

# %%
tests = paper.paper_tests(ours)
table(tests, "table_tests")
assert (tests["p_ttest_ind"] < 1e-3).all()  # the paper's "p < 0.001"
wide = paper.condition_table(ours)
figure(an.paired_violins(wide, [("scratch", "pretrained"), ("train_10", "train_100")],
                            labels=[("scratch", "pretrained"), ("10 %", "100 %")],
                            titles=["pretraining (DermaMNIST)", "training-set size (3 datasets)"],
                            pvalues=[tests.loc[0, "p_wilcoxon"], tests.loc[1, "p_wilcoxon"]],
                            ylabel="test accuracy after 10 epochs"), "fig_violins")

# %% [markdown]
# Both effects reproduce: pretraining raises DermaMNIST accuracy by 8 points on average (88 % of the
# models gain), and the full training set beats 10 % for 95 % of the models; every test gives p < 0.001
# (annotated: Wilcoxon).
#
# ## 4 · Audit: energy and CO2 values shared between experiments
#
# Energy is reported to 12 significant digits. Two separate training runs cannot consume exactly the same
# energy, yet the published files repeat one model's energy (and CO2) across experiments. We count, for
# each pair of experiments, the models with exactly equal values, and the models whose accuracy, energy
# and time are all equal (a duplicated result).

# %%
order = list(paper.EXPERIMENTS)
pairs = paper.pair_counts(ours, order=order)
table(pairs, "table_audit_pair_counts")
figure(an.count_heatmap(paper.pair_matrix(pairs, "same_energy").loc[order, order],
                           title="models with identical energy (kWh) in both experiments",
                           cbar_label="models (of 131)"), "fig_audit_shared_energy")

# %%
same = pairs.set_index(["group_a", "group_b"])
assert same.loc[("derma_small", "derma_smallest"), "same_energy"] == 72
assert same.loc[("derma_pt", "lidc"), "identical_rows"] == 6
assert (pairs["same_energy"] == pairs["same_co2"]).all() and (pairs["same_energy"] > 0).sum() == 17
identical = paper.identical_rows(ours)
table(identical, "table_audit_identical_rows")
shared = paper.shared_values(ours, "energy")
table(shared, "table_audit_shared_energy_values")
assert ours["model"].nunique() - shared["model"].nunique() == 25

# %% [markdown]
# 17 of the 28 pairs share energy values, from 6 models (`derma_pt`/`lidc`) up to 72 of 131
# (`derma_small`/`derma_smallest`); CO2 repeats exactly where energy does (carbontracker derives it from
# energy). Training time is never shared, except by the 6 models whose whole result is identical in
# `derma_pt` and `lidc`; the few equal accuracies elsewhere are ties on a coarse grid (see below), with
# different energy and time. Only 25 of the 131 models have eight distinct energies.
#
# ### Which copy is the original? Two physical checks
#
# **Implied power.** `train_time` is the last epoch, so energy / (10 x last-epoch time) is the mean power
# drawn during training. Rows with a unique energy imply 0.2-0.7 kW, one GPU machine; so do the shared
# values in `derma`, `derma_pt` and `lidc`. In the 1 % and 10 % experiments and in `pneumonia` the shared
# values imply 0.9-16 kW: the energy of a longer run (most often `derma`'s) reported for a shorter one.

# %%
flags = paper.flag_suspects(ours)
flags["energy value"] = flags["shared_energy"].map({True: "shared with another experiment", False: "unique"})
figure(an.distribution_by_group(flags, "implied_power_kw", "experiment", hue="energy value",
                                   group_order=order, logy=True,
                                   title="mean power implied by energy / (10 x last-epoch time)"),
       "fig_audit_implied_power")

# %% [markdown]
# **Accuracy grid.** The authors' code averages accuracy over test batches of 32 and drops the last
# incomplete batch, so every accuracy is a multiple of 1/1984 on DermaMNIST (62 batches), 1/608 on
# PneumoniaMNIST (19) and 1/3008 on LIDC (94). The 6 identical `derma_pt` rows are on the LIDC grid in all
# ten epochs and on the DermaMNIST grid in none: they are LIDC results filed under `derma_pt`.

# %%
grid = flags[flags["accuracy_misplaced"]][["experiment", "model", "accuracy_fits", "energy_shared_with",
                                           "test_09", "energy"]]
table(grid, "table_audit_misplaced_accuracy")
summary = paper.suspect_summary(flags)
table(summary, "table_audit_suspect_rows")

# %% [markdown]
# Two ways to exclude rows, from the strictest to the most targeted:
#
# * **without suspect rows** drops every row whose energy/CO2 appears in another experiment, original and
#   copy alike (we cannot always tell them apart: `derma` and `derma_pt` share 28 plausible values);
# * **without likely copies** drops only the rows the physical checks reject: shared energy with an
#   implied power above the highest of that experiment's unshared rows, or accuracies on another grid.
#
# ### How the PePR-E top-5 changes, and how PePR-T compares
# For each experiment: the top-5 under each scenario and score, how many of the published PePR-E top-5
# remain (`overlap`), where the published #1 now ranks, and the rank correlation with the published PePR-E.

# %%
ranking = paper.ranking_sensitivity(flags, k=5)
table(ranking, "table_audit_rankings")

# %% [markdown]
# Copied energies are the largest of their experiment (they come from longer runs), so they set the
# maximum of the min-max normalisation and squeeze every genuine row's E_n towards 0: in the small
# experiments the published PePR-E is then little more than accuracy. Removing the copies moves the
# rankings of `derma_small`, `derma_smallest`, `lidc_small` and `pneumonia_small` towards the ranking that
# training time (never copied, except for the 6 rows) gives. The full-data experiments `derma`, `derma_pt`,
# `lidc` and `pneumonia` keep their top-5. Agreement of each ranking with the published **PePR-T**:

# %%
ranking_t = paper.ranking_sensitivity(flags, k=5, baseline=("published", "pepr_t"))
table(ranking_t[ranking_t["score"] == "pepr_e"], "table_audit_rankings_vs_pepr_t")
small = ranking_t[ranking_t["experiment"].str.contains("small") & (ranking_t["score"] == "pepr_e")]
cleaned = small[small["scenario"] == "without likely copies"]["spearman_vs_baseline"]
assert (cleaned > 0.975).all() and (cleaned > small[small["scenario"] == "published"]["spearman_vs_baseline"].values).all()

# %% [markdown]
# ### The headline conclusions under each scenario
# Pretraining gain and 100 % vs 10 % gain (test accuracy, with p-values), the rank correlation of PePR and
# of accuracy with model size (on per-model means), and how small the top-5 models are.

# %%
headlines = paper.headline_checks(flags, k=5)
table(headlines, "table_audit_headlines")
assert (headlines["pretrain_p_wilcoxon"] < 1e-3).all() and (headlines["data_p_wilcoxon"] < 1e-3).all()
assert (headlines["rho_score_vs_params"] < -0.5).all()
assert (headlines["top5_median_params_m"] < headlines["all_median_params_m"] / 2).all()

# %% [markdown]
# **Conclusions.** The paper's qualitative findings survive the audit: pretraining and more data raise
# accuracy (p < 0.001 in every scenario), PePR-E and PePR-T strongly favour small models (Spearman rho with
# size between -0.58 and -0.76, against -0.11 to -0.26 for accuracy alone), and the top-5 models are a
# fifth to a third of the median size, with "efficient" designs over-represented (48-65 % vs 24 %).
#
# What does *not* survive are the PePR-E rankings of the small-data experiments (1 % and 10 %), which rest
# on energy values copied from other experiments: without the likely copies their published top-5 keeps
# at most two of its models, and the published PePR-T ranking (rank correlation 0.98-1.00 with the
# cleaned PePR-E) is the trustworthy one there. The 6 LIDC results filed under `derma_pt` understate the
# pretraining gain slightly (7.96 -> 8.61 accuracy points without them).

# %% [markdown]
# ## 5 · Checks for the test suite

# %%
pairs_key = {f"{r.group_a}|{r.group_b}": {"same_energy": r.same_energy, "same_co2": r.same_co2,
                                          "identical_rows": r.identical_rows}
             for r in pairs.itertuples() if r.same_energy or r.identical_rows}
checks = {
    "rows": int(len(ours)),
    "max_abs_diff": max_abs_diff,
    "audit": {
        "pairs_with_shared_energy": int((pairs["same_energy"] > 0).sum()),
        "pairs": pairs_key,
        "identical_rows": identical[["model", "group_a", "group_b"]].to_dict(orient="records"),
        "rows_with_shared_energy": int(flags["shared_energy"].sum()),
        "suspect_rows": int(flags["suspect"].sum()),
        "likely_copies": int(flags["likely_copy"].sum()),
        "misplaced_accuracy_rows": int(flags["accuracy_misplaced"].sum()),
    },
    "tests": tests[["comparison", "n_models", "mean_diff", "p_ttest_ind", "p_ttest_rel", "p_wilcoxon"]]
    .to_dict(orient="records"),
    "files": sorted(p.name for p in report.files),
}
atomic_write_json(out / "checks.json", checks)
display(Markdown(f"Wrote {len(report.files) + 1} files to `{out}` (figures/, tables/)."))
