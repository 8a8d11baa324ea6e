"""bin package."""
