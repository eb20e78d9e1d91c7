"""Application layer: use cases, watchers, runtime, configuration, container and entrypoints."""
