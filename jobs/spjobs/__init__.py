"""Data-plane programs of StreamPipeline: the generator and the Spark streaming job.

Each subpackage runs standalone in its own image; they share only :mod:`spjobs.contract`.
"""
