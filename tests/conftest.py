"""Session fixtures shared by every test: real servers on 127.0.0.1 (see servers.py)."""

from servers import moto_serial_server, moto_server, postgres_server, redis_server

__all__ = ["moto_serial_server", "moto_server", "postgres_server", "redis_server"]
