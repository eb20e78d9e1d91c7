"""nightwatch: database rows in, Kubernetes Jobs out."""

__version__ = "0.1.0"
