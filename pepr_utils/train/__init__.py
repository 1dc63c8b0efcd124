"""pepr_utils.train."""
