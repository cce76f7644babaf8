"""taskservice: an asynchronous task service over PostgreSQL and RabbitMQ."""

__version__ = "0.1.0"
