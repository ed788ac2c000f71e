"""Official conformance suite run through durable_ext's local runtime."""
