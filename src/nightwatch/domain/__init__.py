"""The pure model of a task: states, transition rules, Job specs, observations and the ports.

Nothing in this package does I/O or reads the clock; adapters and use cases pass the world in.
"""
