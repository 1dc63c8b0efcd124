"""pepr_utils.paper."""
