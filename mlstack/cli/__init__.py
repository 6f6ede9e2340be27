"""The ``mlstack`` command line. Each verb group lives in its own module with a ``register(app)``."""
