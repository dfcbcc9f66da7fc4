"""The ``rascal`` command line (installed as the ``rascal_cli`` package)."""
