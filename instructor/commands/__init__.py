"""The instructor's commands (``python3 kit.py COMMAND``): release, collect, grade, feedback,
export, and the helpers for writing a lab (authoring). Each is a thin layer over the course
(:mod:`instructor.course`) and, for grading, the engine (:mod:`instructor.grading`)."""
