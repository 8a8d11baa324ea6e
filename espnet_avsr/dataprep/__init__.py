"""dataprep package."""
