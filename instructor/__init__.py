"""Instructor tools: release, collect, grade, feedback, export (``python3 kit.py COMMAND``)."""
