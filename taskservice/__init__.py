"""taskservice: an asynchronous task service over PostgreSQL and RabbitMQ.

`from taskservice import handler` declares a task handler (taskservice.kinds).
"""

__version__ = "0.1.0"

from taskservice.kinds import handler  # after __version__, which modules import from here

__all__ = ["__version__", "handler"]
