"""What the worker and `starter/` both stand on: the payload codec and its data keys."""
