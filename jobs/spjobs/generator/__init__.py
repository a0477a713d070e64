"""Simulated financial data for the pipeline: customers and transactions into Kafka.

``model`` makes the records (pure, deterministic), ``producer`` sends them with
acknowledged-only accounting, ``__main__`` is the container's entry point.
"""

from spjobs.generator.config import GeneratorConfig, parse_duration
from spjobs.generator.model import FLUSH, Record, RecordModel, Tally
from spjobs.generator.producer import GeneratorError, run

__all__ = [
    "FLUSH",
    "GeneratorConfig",
    "GeneratorError",
    "Record",
    "RecordModel",
    "Tally",
    "parse_duration",
    "run",
]
