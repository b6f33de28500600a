"""The composition root: the ``hotline`` command, ``hotline serve``, the shared AppContext, and
the one place (``wiring``) that connects workers, CLI commands, AGI routes and HTTP features."""
