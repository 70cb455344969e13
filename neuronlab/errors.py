"""Errors a user can act on, with messages that say what was wrong and what is accepted."""


class ModelSpecError(ValueError):
    """A model spec that cannot be loaded."""
