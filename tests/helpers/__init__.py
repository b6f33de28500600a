"""Helpers that several test modules share. A test module takes them from here (or a fixture
from a conftest.py), never from another test module."""
