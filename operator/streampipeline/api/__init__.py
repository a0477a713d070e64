"""The REST service and live dashboard over one pipeline's topics and sink (``streampipeline api``).

Kafka is read by offsets with no consumer group, so any replica, after any restart,
answers the same; writes are validated against the data contract before anything is
produced.  Modules: ``config`` (what to serve), ``kafka_io`` (reads and produce),
``datasets`` (the sink's Parquet), ``problems`` (RFC 7807 errors), ``auth`` (bearer
token), ``telemetry`` (rates over time for the dashboard), ``app`` (the routes) and
``server`` (uvicorn, in a thread for ``streampipeline run``).
"""
