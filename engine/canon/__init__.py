"""Canonization: the JSONata transform registry, helper functions and canonical schemas."""
