"""Benchmarks: scripts that measure and print, never assert."""
