"""The web console (issue 12): people log in with a password and work in a Chinese single-page
application (``console/web/``, built into ``console/dist/``) over the same HTTP API that other
systems call with tokens. This package holds the server side: users, sessions and CSRF, the
console's own endpoints (rating search, live events, comment audio, delivery), and serving the
built files."""
