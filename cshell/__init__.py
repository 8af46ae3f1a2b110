"""cshell: an interactive teaching shell for Linux containers."""

__version__ = "0.1.0"
