"""pepr_utils.grid."""
