"""Whole jobs: read inputs, run the stages, write outputs."""
