"""The time-series vault: chunked, compressed, checksummed runs and an atomic LATEST."""
