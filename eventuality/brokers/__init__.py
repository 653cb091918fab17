"""Publishers for :class:`~eventuality.Relay`, one module per broker, each importing its client
only when imported itself: :mod:`eventuality.brokers.nats` (``pip install "eventuality[nats]"``)
and :mod:`eventuality.brokers.rabbitmq` (``pip install "eventuality[rabbitmq]"``)."""
