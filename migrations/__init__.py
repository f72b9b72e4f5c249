"""Numbered SQL migrations, shipped as package data (see runners/migrator.py)."""
