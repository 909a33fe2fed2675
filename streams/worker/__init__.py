"""The stream worker: the faust app that runs the pure core on Kafka, checkpoints its state and serves /metrics."""
