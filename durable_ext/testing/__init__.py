"""Test helpers for users of durable_ext: pytest fixtures and a store contract suite."""
