"""The job stops its query only between batches (spjobs.processor.job._busy)."""

from __future__ import annotations

from spjobs.processor.job import _busy


def test_busy_while_a_trigger_runs_or_the_query_initializes():
    # Spark's StreamingQuery.status messages (StreamExecution.updateStatusMessage)
    assert _busy({"message": "Initializing StreamExecution", "isTriggerActive": False})
    assert _busy({"message": "Initializing sources", "isTriggerActive": False})
    assert _busy({"message": "Processing new data", "isTriggerActive": True})
    assert not _busy({"message": "Waiting for next trigger", "isTriggerActive": False})
    assert not _busy({"message": "Waiting for data to arrive", "isTriggerActive": False})
    assert not _busy({})
