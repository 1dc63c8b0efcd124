"""pepr_utils.report."""
