"""pepr_utils.cli."""
