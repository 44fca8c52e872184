"""Connectors read sources into Arrow. They know nothing of Dagster or of the lake."""
