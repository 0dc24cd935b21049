class ObjectMissing(Exception):
    """The requested object does not exist in the store."""
