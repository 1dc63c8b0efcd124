"""pepr_utils.analysis."""
