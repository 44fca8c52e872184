"""Quality: Great Expectations suites on each new batch, DuckDB invariants over whole tables."""
