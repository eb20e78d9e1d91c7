"""The watcher registry (filled in below)."""
