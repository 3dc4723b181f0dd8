"""Evaluations on public labelled data sets (SKAB, NASA C-MAPSS): the benchmark's own protocol and metrics."""
