"""Benchmark runners, reports and plots."""
