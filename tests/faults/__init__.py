"""Fault runs (issue 8): each prints its figure (tried / lost / duplicated) and asserts zero."""
