"""Training: the paper's recipe (fit, evaluate, metrics) and the experiment blocks notebooks 02 and 03 call.

Exports the loop (``loop``), the blocks of a run from parameters to its saved record (``experiment``),
glibc's allocator settings for CPU training (``allocator``) and :func:`run_notebook_code` (``notebook_code``).
"""

from ..face import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "allocator": ("MALLOC_ENV", "keep_freed_memory"),
    "experiment": ("CHECKPOINT_FILE", "PREDICTIONS_FILE", "input_normalisation", "model_summary",
        "place", "batches", "history_entry", "final_metrics", "make_record", "save_run", "default_out_dir",
        "run_experiment", "record_summary"),
    "loop": ("EVAL_BATCH_SIZE", "grad_scaler", "trainable_parameters", "classification_metrics", "classification_loss", "speed_options",
        "train_one_epoch", "evaluate", "predict", "fit", "inference_time_ms", "plot_history"),
    "notebook_code": ("run_notebook_code",),
})
