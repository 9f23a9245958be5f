"""lorchestra faces."""
