"""Everything `streampipeline run` needs to run a pipeline on one machine."""
