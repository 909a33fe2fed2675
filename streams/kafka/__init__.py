"""Kafka plumbing: the embedded broker (broker), topic administration (admin) and aiokafka client options (client)."""
