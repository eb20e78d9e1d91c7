"""Use cases: one tick of each kind of work, written against the ports only."""
