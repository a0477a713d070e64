"""The SparkApplication's mainApplicationFile (local:///opt/streampipeline/processor_main.py)."""

from spjobs.processor.__main__ import main

raise SystemExit(main())
