"""Analysis of result files: per-level text metrics, IQ scoring, summary tables and plots."""
