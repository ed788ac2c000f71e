"""pytest plugin of durable_ext (registered through the ``pytest11`` entry point)."""
