"""Placeholder: family module being written."""
