"""pepr_utils.meter."""
