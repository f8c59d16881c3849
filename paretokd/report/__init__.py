"""The report (placeholder while the package is restructured)."""
