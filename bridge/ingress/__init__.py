"""Webhook ingress: verify, deduplicate, normalise, publish; answer only after Kafka's ack."""
