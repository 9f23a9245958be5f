"""Benchmarks that put lorchestra beside its peers (run each as ``python -m bench.NAME``)."""
