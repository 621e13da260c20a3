"""Real services that tests start themselves (RabbitMQ, ...), standard library only."""
