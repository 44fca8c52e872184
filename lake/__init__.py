"""The lake: Delta tables on local disk in three layers, and the DuckDB catalog over them."""
