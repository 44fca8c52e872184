"""Dagster assets: thin calls into connectors, lake and quality, generated from the YAML."""
