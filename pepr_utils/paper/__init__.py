"""The paper's published results: its CSVs (downloaded with a checksum, or read locally) and their audit (notebook 00).

Exports the reference files' readers (``reference``) and the paper's tables, tests and checks recomputed
from them (``reproduction``).
"""

from ..face import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "reference": ("EXPERIMENTS", "TEST_COLUMNS", "reference_file", "load_results", "load_published_scores",
        "load_models", "load_model_rows", "matching_experiments"),
    "reproduction": ("recompute_scores", "score_differences", "experiment_overview", "top_k", "paper_top_table",
        "model_means", "condition_table", "compare_conditions", "paper_tests", "shared_values", "pair_counts",
        "pair_matrix", "identical_rows", "flag_suspects", "suspect_summary", "ranking_sensitivity",
        "headline_checks"),
})
