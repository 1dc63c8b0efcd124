"""The analysis report: notebook 04 executed into a folder of figures, tables, Markdown and one HTML file.

Exports :class:`Report`, the writer (``writer``; its HTML pieces: ``html``), the first screen's line, table
and caption (``first_screen``), the sentences that read the numbers (``document``) and ``pepr report``'s
:func:`build_report` (``build``).
"""

from ..face import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "build": ("HTML_NAME", "default_report_dir", "check_report_dir", "check_options", "build_report"),
    "writer": ("Report",),
    "first_screen": ("say_study_line", "verdict_summary", "say_headline"),
    "document": ("say_study", "say_excluded", "say_best", "say_floor",
        "say_verdicts", "say_verdict_terms", "say_constant_predictors", "say_at_floor", "say_data_efficiency",
        "say_params_trend", "say_paired", "say_pareto", "say_agreement", "say_reference", "say_seeds", "say_auc", "say_recommend",
        "say_questions", "say_beside_paper"),
})
