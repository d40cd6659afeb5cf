"""The local Apache Kafka broker (KRaft) fetched from Maven Central, for dev and tests."""
