"""Development tooling: the platform simulator, the local Kafka broker, ``dev`` and ``sign``.

Nothing in the runtime (ingress, kafka publisher/consumer, outbox, relay, consumers) imports this
package; it imports the runtime to run it locally.
"""
