"""The one exception a benchmark step raises when the run cannot go on."""


class BenchError(RuntimeError):
    """A step failed in a way that makes the numbers meaningless; the message says which."""
