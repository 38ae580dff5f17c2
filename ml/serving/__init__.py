"""Reference serving reader: a small HTTP service over the published serving tables."""
