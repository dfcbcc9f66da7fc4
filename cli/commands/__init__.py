"""One module per ``rascal`` sub-command; each exposes a click command named after it."""
