"""Consumer-group applications: read Kafka, commit decisions to the outbox, then the offset."""
