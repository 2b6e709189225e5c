"""Grading engine pieces that run in the grader's own process, never in a student's kernel."""
