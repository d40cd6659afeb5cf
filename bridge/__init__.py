"""commerce-bridge: platform webhooks into Kafka events, decisions back into platform writes."""

__version__ = "0.1.0"
