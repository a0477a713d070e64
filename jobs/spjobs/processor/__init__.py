"""The PySpark Structured Streaming job: validate, enrich, aggregate, write Parquet."""
