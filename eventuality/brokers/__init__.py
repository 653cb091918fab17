"""Other services: eventuality's connections to message brokers (NATS JetStream, RabbitMQ).

Each module imports its broker's client, an optional extra (``eventuality[nats]``,
``eventuality[rabbitmq]``); ``import eventuality`` imports none of them.
"""
