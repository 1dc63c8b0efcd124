"""pepr_utils.models."""
