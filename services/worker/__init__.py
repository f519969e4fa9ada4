"""Training worker: consumes job messages of one pool (``cairn.jobs.training.<pool>``), claims each job from
the training scheduler, trains it with ``libs.ml`` in a thread while the Kafka consumer keeps polling (its
partitions paused, so a long job causes no rebalance), checkpoints every epoch to the object store, and
turns the result into a version through the version service. No HTTP server and no database."""
