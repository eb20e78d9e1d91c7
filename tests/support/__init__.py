"""Helpers shared by more than one test folder (and by bench/): real processes, servers, backends.

A helper used by one folder's tests only stays in that folder (a module, or its conftest.py when it
is fixtures); the fake Kubernetes API server is its own package, `tests.fakekube`, because it also
runs as a program (`python -m tests.fakekube`).
"""
