"""pepr_utils.data."""
