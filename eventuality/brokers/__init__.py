"""Other services: eventuality's connections to message brokers (NATS JetStream, RabbitMQ).

Events out: :mod:`~eventuality.brokers.nats` (``JetStreamPublisher``) and
:mod:`~eventuality.brokers.rabbitmq` (``RabbitPublisher``) publish for a
:class:`~eventuality.Relay`. Commands in: :mod:`~eventuality.brokers.nats_inbound` and
:mod:`~eventuality.brokers.rabbitmq_inbound` feed a :class:`~eventuality.CommandConsumer`.
Each module imports its broker's client, an optional extra (``eventuality[nats]``,
``eventuality[rabbitmq]``); ``import eventuality`` imports none of them.
"""
