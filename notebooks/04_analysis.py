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
# # 04 · PePR analysis of a set of runs
#
# <details><summary><b>What this report is, and how it is made</b> (method)</summary>
#
# Which models give the most performance per unit of resource, whether pretraining and more training
# data pay off, and how sure we can be. The answer comes first: the study in one line, the verdict on
# each of the paper's claims, and the paper's question in one figure (accuracy and PePR-E against model
# size, the paper's trend beside ours); the evidence behind each verdict is folded just below it.
# Then the paper's analysis (Selvan et al. 2024) applied to our own run records: PePR-E/C/T/M per
# experiment, top-k tables, the figures against model size, and the paired comparisons. Then where the
# paper could not go: the accuracy–energy Pareto front, a fixed-reference PePR, AUC as the performance
# measure, seed variation and rank stability, agreement between rankings, and a "which model should I
# use" table for a stated budget.
#
# Every sentence below is generated from the numbers of this run set. `pepr report RESULTS` executes
# this notebook and writes figures (PNG, PDF), tables (CSV with every column at full precision,
# Markdown), `summary.md` (its closing *Details* section holds what the HTML folds), this executed
# notebook and a self-contained `report.html` into the report folder.
#
# </details>

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
results = "../outputs/quick/results.csv"  # a results.csv (pepr grid collect), a run folder, or a list of them
out_dir = None  # report folder; None: outputs/<study>/report
budget = {}  # limits for "which model should I use", e.g. {"energy_kwh": 0.01, "peak_mem_gb": 4}; {}: median energy
reference = {}  # fixed R_ref per resource (R_n becomes R / R_ref), e.g. {"e": 0.01}; {}: study-wide medians
top_k = 5  # models per experiment in the top-k tables
n_boot = 1000  # bootstrap replicates for the top-rank stability
seed = 0  # seed of the bootstrap

# %%
from pathlib import Path

import pandas as pd

from pepr_utils import analysis as an
from pepr_utils import report as rp

pd.set_option("display.max_columns", 30)
rp.check_options(top_k=top_k, n_boot=n_boot, seed=seed, budget=budget, reference=reference)  # before any file

# %%
runs = an.load_results(results)
ok, excluded = an.split_runs(runs)
resources = an.available_resources(ok)
an.require_scorable(runs, ok, resources)
rep = rp.Report(Path(out_dir) if out_dir else rp.default_report_dir(results))  # parameters and runs checked: now write
facts = an.study_facts(runs, ok)
key = "e" if "e" in resources else next(iter(resources))  # the headline resource: energy when recorded
main, cost = f"pepr_{key}", resources[key]

# %%
# The verdicts (section 1 gives their evidence) and PePR per model and experiment (section 4 explains it),
# computed first: the first screen shows what they come to.
histories = an.load_histories(runs[runs["status"] == "ok"])  # per-epoch accuracy: the cost to a target
verdicts = an.verdict_table(ok, resources=resources, by=main, seed=seed, histories=histories)
by_seed = an.verdicts_by_seed(ok, verdicts, resources=resources, by=main, seed=seed, histories=histories)
# The paper's own effect for each claim, measured the same way on its published rows: an inconclusive
# verdict then says whether the design could have seen an effect that large (None when offline).
paper_all, paper_all_note = an.published_rows()
verdicts = an.with_paper_effects(verdicts, None if paper_all is None else
                                 an.paper_effects(paper_all, resources=resources, by=main, seed=seed))
ref = an.parse_reference(reference) or an.default_reference(ok, resources)
scored = an.add_model_type(an.score_table(an.model_table(ok), resources=resources, reference=ref))

# %%
# The first screen: the study in one line, the verdict on each claim (effect in the claim's unit with its
# 95% interval, Holm-adjusted p, why in plain words), and the paper's question in one figure, with the
# paper's published rows for the experiments we ran as it did (or a note saying why they are missing).
rep.text(rp.say_study_line(facts, resources))
rep.table(rp.verdict_summary(verdicts, by_seed), "verdicts_summary", badges="verdict", summary=True)
paper_rows, paper_note = an.paper_beside(scored)
rep.figure(lambda: an.headline_plot(scored, paper_rows, score=main, paper_note=paper_note), "headline",
           caption=rp.say_headline(paper_note, paper_rows is not None, score=main))

# %% [markdown]
# ## 1. Verdicts: the evidence
#
# Each verdict above rests on the statistics folded here: the full table, one sentence per claim, the
# verdict on each seed's runs alone (a verdict that changes with the seed is not one to rely on), and what
# the words and numbers mean. Only models that beat their majority-class floor give evidence; the ones
# that did not are listed apart, "at floor", after the verdicts.
#
# <details><summary><b>How a verdict is reached</b> (method)</summary>
#
# One row per claim: the evidence (units compared, Hodges-Lehmann estimate with a 95% interval that
# resamples contexts, units and seeds, Wilcoxon p, rank-biserial r, equivalence p, Holm-adjusted p) and the
# verdict (the vocabulary is `verdicts.VERDICTS`). The size claims are tested over the models within
# experiments, seeds as replicates: the mean within-experiment Spearman ρ, a permutation p (parameters
# permuted among the models of each experiment) and an interval that resamples models. `detectable` is the
# smallest effect each claim's design finds with 80% power at Holm's strictest level; `paper_effect` is the
# paper's own effect, measured the same way on its published rows. The second table gives the verdict on
# each seed's runs alone.
#
# </details>

# %%
with rep.details("Every statistic of each claim (the verdict table)"):
    rep.table(verdicts, "verdicts")
    rep.text(rp.say_verdicts(verdicts, by_seed, terms=False))
with rep.details("The verdict on each seed's runs alone"):
    rep.table(by_seed, "verdicts_by_seed")
with rep.details("What the verdicts and their statistics mean (vocabulary)"):
    rep.text(rp.say_verdict_terms())
floor = an.at_floor(ok)
rep.table(floor, "at_floor")
rep.text(rp.say_at_floor(floor, ok))
rep.text(rp.say_constant_predictors(ok))

# %% [markdown]
# ### Our rankings beside the paper's
#
# For the models both studies ran, at the same dataset and training fraction: our rank by accuracy and by
# PePR-E beside the paper's published one (the paper fine-tuned every model from ImageNet for 10 epochs;
# ours are trained as this study's grid says). Ranks are taken among the shared models only and PePR is
# recomputed on each side over them, so each side keeps one normalisation.

# %%
beside = an.ranks_beside_paper(ok, paper_all, cost=cost) if paper_all is not None else None
agreement = an.rank_agreement_with_paper(beside, seed=seed) if beside is not None and len(beside) else None
if agreement is not None:
    rep.table(agreement, "paper_rank_agreement")
    rep.table(beside, "paper_ranks_beside", show=False)
    rep.figure(lambda: an.paper_beside_plot(beside, agreement), "paper_ranks_beside",
               caption="**Do the two studies order the shared models alike?** Each point is one model both ran: "
                       "the paper's rank (x) against ours (y), 1 = best, by accuracy (left) and PePR-E (right). "
                       "On the grey diagonal the two agree; the title gives Kendall's τ with its 95% interval.")
rep.text(rp.say_beside_paper(agreement, paper_all_note, available=paper_all is not None))

# %% [markdown]
# ### How much data pretraining saves
#
# Where a dataset was run pretrained and from scratch at three or more training fractions for two or more
# architectures: accuracy at each fraction minus scratch on all the data, and the smallest fraction at which
# each regime matches it (interval above minus the non-inferiority margin).

# %%
curve = an.data_efficiency(ok, seed=seed)
smallest = an.smallest_matching_fraction(curve)
rep.table(curve, "data_efficiency")
rep.figure(lambda: an.data_efficiency_plot(curve), "data_efficiency",
           caption="Test accuracy minus scratch on all the data, against the training fraction (log scale), one "
                   "line per regime with its 95% interval. Where a line enters the grey band (within the margin "
                   "of scratch on all data) that regime matches it with that fraction of the data.")
rep.text(rp.say_data_efficiency(curve, smallest))

# %% [markdown]
# ## 2. What was run
#
# One row per run record; an experiment is dataset × image size × training fraction × regime
# (scratch, or fine-tuned from ImageNet weights: full or linear probe).

# %%
rep.text(rp.say_study(facts, resources))
rep.table(an.overview(runs), "overview")

# %% [markdown]
# ## 3. Failed and incompatible runs

# %%
rep.text(rp.say_excluded(excluded))
rep.table(excluded, "excluded_runs", show=20)

# %% [markdown]
# ## 4. PePR per experiment (the paper's analysis)
#
# PePR_R = P / (1 + R_n) with P the test accuracy after the last epoch and R_n the resource min-max
# normalised over the models of one experiment (E: energy, C: CO2, T: training time, M: peak memory).
# With several seeds, accuracy and resources are first averaged per model. An experiment with one
# model has no min-max PePR (nothing to normalise against).

# %%
score_cols = [f"pepr_{k}" for k in resources]
rep.table(scored, "pepr_scores", show=False)
rep.table(scored[["experiment", "model", "num_params", "test_acc", *resources.values(), *score_cols]]
          .sort_values(["experiment", main], ascending=[True, False]), "pepr_scores_short", show=15)

# %% [markdown]
# ### Top models by PePR, with the most accurate model beside them
# `acc_given_up`: how much test accuracy the listed model gives up against the experiment's most accurate model.

# %%
for col in score_cols:
    rep.table(an.top_k(scored, col, top_k), f"top{top_k}_{col}", show=col == main)
best = an.best_per_experiment(scored, score_cols)
rep.table(best, "best_per_experiment")
rep.text(rp.say_best(best, scored, by=main, cost=cost))

# %% [markdown]
# ### The majority-class floor and a chance-corrected PePR
# A model that predicts one class, or guesses, still gets an accuracy, and the cheapest such model
# would top a min-max PePR ranking. Beside the paper's PePR (P = accuracy), `pepr_kappa_<r>` uses
# P = Cohen's κ clipped at 0: 0 for any constant guess or coin flip whatever the class balance, 1 for
# perfect predictions. κ rather than (acc − majority)/(1 − majority) because it also catches a model
# that guesses at the base rate, which can beat the majority floor on a balanced test split.

# %%
rep.text(rp.say_floor(scored))
kappa_col = f"pepr_kappa_{key}"
rep.text(rp.say_agreement(an.rank_agreement(scored, (main, kappa_col)),
                          f"Rank agreement (Kendall's τ) between {an.label(main)} and {an.label(kappa_col)}:"))

# %% [markdown]
# ### Scores against model size
# As in the paper: test accuracy, energy and PePR-E against the number of parameters, one panel per experiment.

# %%
hue = "type" if "type" in scored.columns and scored["type"].nunique() > 1 else None
for y, logy in (("test_acc", False), (cost, True), (main, False)):
    rep.figure(lambda y=y, logy=logy: an.scatter_vs_params(scored, y, hue=hue, facet="experiment", logy=logy,
                                                              sharey=not logy, trend=True),
               f"{y}_vs_params",
               caption=f"{an.label(y).capitalize()} against trainable parameters (log scale), one panel per "
                       "experiment, with the least-squares trend and Spearman's ρ in each panel's title: a rising "
                       "line means bigger models score higher in that experiment.")
rep.figure(lambda: an.metrics_vs_params(scored, score_cols, hue="experiment"), "pepr_all_vs_params",
           caption="Each PePR score against trainable parameters (log scale), one panel per resource, colour by "
                   "experiment: whether the scores agree on which model sizes pay off.")
rep.text(rp.say_params_trend(scored, ("test_acc", main)))

# %% [markdown]
# ### The PePR profile
# Iso-PePR lines over performance and normalised energy; each dot is one model of one experiment. A model
# with twice the normalised energy must be proportionally more accurate to score the same.

# %%
rep.figure(lambda: an.pepr_profile_points(scored, x=f"{key}_n", y="test_acc", hue="experiment",
                                             resource=key.upper(), score=main), "pepr_profile",
           caption=f"Every model at its normalised {an.label(cost)} (x) and test accuracy (y) over the iso-PePR "
                   f"lines: models on a brighter band score a higher {an.label(main)}; the top three are named.")

# %% [markdown]
# ## 5. Does pretraining pay off? Does more data? (paired tests)
# Each model is paired with itself across two experiments; Wilcoxon signed-rank and paired t-tests with
# their effect sizes (rank-biserial r, Cohen's d_z). Where the same two conditions meet in several
# contexts (datasets, fractions), a pooled comparison follows, as in the paper's violins: each model in
# each context is one pair. PePR is compared on one scale per pair of experiments: min-max over the
# models of both.

# %%
comparisons = an.find_comparisons(scored)
tests = an.paired_tests(scored, comparisons, values=("test_acc", main, cost))
rep.table(tests, "paired_tests")
rep.text(rp.say_paired(tests))
rep.figure(lambda: an.paired_violins(**an.paired_violin_inputs(scored, comparisons, "test_acc", tests)),
           "paired_test_acc",
           caption="Test accuracy of each model under the two conditions of each comparison, a faint line joining "
                   "a model's two values, with the Wilcoxon p above: lines that mostly slope one way are a paired "
                   "effect even where the violins overlap.")

# %% [markdown]
# ## 6. Beyond the paper
# ### 6.1 The accuracy–energy Pareto front

# %%
scored["on_front"] = an.pareto_front(scored, "test_acc", cost)
scored["top_pepr"] = scored[f"rank_{main}"] == 1
front = an.pareto_table(scored, "test_acc", cost, by=main)
rep.table(front, "pareto_front")
rep.figure(lambda: an.pareto_plot(scored, x=cost, y="test_acc", highlight="top_pepr",
                                     highlight_label=f"top PePR-{key.upper()}"), "pareto_front",
           caption=f"{an.label(cost).capitalize()} against test accuracy per experiment: the Pareto front (blue "
                   "step line) holds the models no other beats on both; grey ones are dominated; the circled model "
                   f"tops {an.label(main)}, always a point of the front.")
rep.text(rp.say_pareto(front, scored, by=main))

# %% [markdown]
# ### 6.2 Fixed-reference PePR beside the min-max PePR

# %%
rep.text(rp.say_reference(ref, bool(reference), resources))
ref_cols = [c for c in (main, f"pepr_ref_{key}") if c in scored.columns]
rep.table(scored[["experiment", "model", "test_acc", cost, *ref_cols]], "pepr_fixed_reference", show=10)
rep.figure(lambda: an.scatter_vs_params(scored, ref_cols[-1], x=main, facet="experiment", logx=False,
                                           xlabel=f"PePR-{key.upper()}, min-max per experiment (score, 0–1)",
                                           ylabel=f"PePR-{key.upper()}, fixed reference (score, 0–1)"),
           "pepr_minmax_vs_reference",
           caption=f"Each model's {an.label(main)} normalised min-max within its experiment (x) against the "
                   "fixed-reference score (y): points on a rising line rank alike under both; scatter means the "
                   "ranking depends on which other models ran.")
rep.text(rp.say_agreement(an.rank_agreement(scored, ref_cols),
                          "Rank agreement (Kendall's τ) between min-max and fixed-reference PePR:"))

# %% [markdown]
# ### 6.3 AUC as the performance measure

# %%
auc_col = f"pepr_auc_{key}"
swing = an.epoch_swing(histories)
if len(swing):
    rep.table(swing, "epoch_swing")
rep.table(scored[["experiment", "model", "test_acc", "test_auc", main, auc_col]]
          if auc_col in scored.columns else scored[["experiment", "model", "test_acc"]], "pepr_auc", show=10)
rep.text(rp.say_auc(an.rank_agreement(scored, (main, auc_col)), swing, histories))

# %% [markdown]
# ### 6.4 Seeds: intervals and how often the top model stays on top

# %%
per_seed = an.per_seed_scores(ok, resources)
seeds = an.seed_summary(per_seed, ("test_acc", main))
rep.table(seeds, "seed_intervals", show=10)
if not facts["single_seed"]:
    rep.figure(lambda: an.interval_plot(seeds, mean=f"{main}_mean", lo=f"{main}_lo", hi=f"{main}_hi",
                                           xlabel=f"PePR-{key.upper()} (score, 0–1): mean and 95% interval over seeds"),
               "seed_intervals",
               caption=f"Each model's {an.label(main)}, mean over seeds with its 95% interval, best at the top of "
                       "each experiment: models whose intervals overlap are not told apart by these seeds.")
predictions = an.load_predictions(ok)
stability = pd.concat([an.top_rank_stability(ok, by, n_boot=n_boot, seed=seed, resources=resources,
                                             predictions=predictions) for by in ("test_acc", main)],
                      ignore_index=True)
rep.table(stability, "top_rank_stability")
rep.text(rp.say_seeds(seeds, stability, facts))

# %% [markdown]
# ### 6.5 Do accuracy, PePR-E and PePR-T rank models alike?

# %%
agree = an.rank_agreement(scored, ("test_acc", main, "pepr_t"))
rep.table(agree, "rank_agreement")
if agree["tau"].notna().any():
    rep.figure(lambda: an.value_heatmap(agree.pivot(index="experiment", columns="pair", values="tau"),
                                           cbar_label="Kendall's τ (−1 to 1)", title="Rank agreement per experiment"),
               "rank_agreement",
               caption="Kendall's τ between two rankings of the models of each experiment (rows), per pair of "
                       "rankings (columns): blue cells (τ near 1) rank alike, red ones reverse each other.")
rep.text(rp.say_agreement(agree, "Kendall's τ between rankings (1: same order, 0: unrelated, −1: reversed)."))

# %% [markdown]
# ## 7. Which model should I use?
# For a stated budget (the `budget` parameter, or `pepr report --budget energy_kwh=0.01`), the most accurate
# model per dataset whose resources all fit, among the models that beat their majority-class floor.

# %%
limits = an.parse_budget(budget) or an.default_budget(scored)
recommendations = an.recommend(scored, limits)
rep.table(recommendations, "recommendations")
rep.text(rp.say_recommend(recommendations, limits, derived=not budget))

# %% [markdown]
# ## 8. The paper's questions, answered on these runs
# Are larger models more accurate? Does PePR pick smaller models? Do pretraining and more data pay off?

# %%
questions = an.paper_questions(scored, tests, by=main)
rep.table(questions, "paper_questions")
rep.text(rp.say_questions(questions))

# %% [markdown]
# ## 9. Files of this report

# %%
rep.finish()
rep.listing()
