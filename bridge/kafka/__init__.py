"""Kafka: the publisher seam, topic names and management, and a local broker for development."""
