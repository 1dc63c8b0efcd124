"""Models: the model catalogue, one timm factory (weights, freezing, size) and the input-size policy.

Exports the catalogue's names (``catalogue``), :func:`create_model` and friends (``build``), :func:`plan_input`
(``input_plan``) and ``pepr models check``'s :func:`check_models` (``check``).
"""

from ..face import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "build": ("WeightsInfo", "BuiltModel", "TRAINABLE_MODES", "CHECKPOINT_SUFFIXES", "no_weights", "create_model", "set_trainable",
        "model_info"),
    "catalogue": ("CATALOGUE_DIR", "ModelRef", "catalogue_names", "load_catalogue", "catalogue_models", "resolve_model"),
    "check": ("check_models",),
    "input_plan": ("MIN_SIZE", "MAX_SIZE", "InputPlan", "plan_input"),
})
