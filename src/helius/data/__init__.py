"""Data preparation and datasets: audio folders to segments, indexes and reports."""
