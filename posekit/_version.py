"""The package version (pyproject.toml's); a module of its own so any layer can read it without the face."""

__version__ = "0.1.0"
