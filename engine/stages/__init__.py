"""Stage workers: each runs as its own subprocess and reports only through events."""
