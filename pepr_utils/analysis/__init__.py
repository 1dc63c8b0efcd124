"""Analysis: from run records to PePR tables, paired comparisons, verdicts and figures (notebook 04).

Exports the results table and the study's questions (``results``), the PePR tables (``tables``), paired
comparisons (``comparisons``), statistics (``stats``), the verdicts (``verdicts``) and the units they judge (``claim_units``, ``cost_to_target``),
how much data pretraining saves (``data_curve``),
the models-within-experiments tests and power (``model_tests``), the paper beside us (``paper_compare``),
the report's headline figure (``headline``) and the figures (``plots``);
``columns`` names the study table's columns and ``formatting`` writes numbers in words.
"""

from ..face import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "columns": ("UNITS", "label"),
    "comparisons": ("find_comparisons", "common_scale", "paired_values", "paired_tests", "paired_violin_inputs", "pair_unit"),
    "headline": ("paper_experiments_like", "paper_beside", "headline_plot"),
    "plots": ("scatter_vs_params", "metrics_vs_params", "pepr_profile", "pepr_profile_points",
        "paired_violins", "distribution_by_group", "count_heatmap", "pareto_plot", "value_heatmap",
        "interval_plot", "data_efficiency_plot", "save_figure", "save_table"),
    "results": ("load_results", "prepare_runs", "add_floor", "split_runs", "require_scorable", "overview", "study_facts", "add_model_type",
        "pareto_table", "load_predictions", "load_histories", "recommend", "paper_questions", "default_budget"),
    "stats": ("paired_test", "pareto_front", "rank_agreement", "seed_summary", "epoch_swing"),
    "tables": ("available_resources", "model_table", "score_table", "default_reference", "parse_reference",
        "parse_budget", "per_seed_scores", "top_k", "best_per_experiment", "top_rank_stability"),
    "verdicts": ("DECIDED", "UNTESTED", "verdict_table", "verdicts_by_seed"),
    "claim_units": ("at_floor", "with_learned", "contexts"),
    "cost_to_target": ("cost_to_reach", "target_cost_units"),
    "data_curve": ("data_efficiency", "smallest_matching_fraction"),
    "model_tests": ("stratified_rank_correlation", "detectable_effect"),
    "paper_compare": ("PAPER_EXPERIMENTS", "published_rows", "paper_runs", "paper_effects", "with_paper_effects", "ranks_beside_paper",
        "rank_agreement_with_paper", "paper_beside_plot"),
})
