"""paretokd: search the student architectures worth distilling, one per latency budget."""

__version__ = "0.1.0"
