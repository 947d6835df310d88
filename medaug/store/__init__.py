"""Persistent outputs: Parquet result rows (and, later, Zarr synthetic sets)."""
