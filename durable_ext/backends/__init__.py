"""Checkpoint stores behind one protocol, selected by URL through entry points."""
