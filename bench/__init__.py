"""Benchmarks that put lorchestra beside its peers: ``python -m bench`` (``make bench``) runs
them all in sequence; ``python -m bench.NAME`` runs one (vault_writer, canonize, index, e2e,
memory, dashboard). Figures and the goals they are held to are in ``docs/performance.md``."""
