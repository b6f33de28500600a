"""The fault suite (issue 8): each test breaks a real component on purpose for a bounded time,
prints its figure (tried / lost / duplicated) and asserts zeros. Run it alone with
``scripts/test tests/faults``."""
