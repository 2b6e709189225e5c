"""What ``nbgrader_config.py`` plugs into nbgrader, so that every way of running nbgrader on the
course (the kit's commands, Formgrader's buttons, ``nbgrader ...`` typed by hand) does the same:

- :mod:`.release`: ``generate_assignment`` preprocessors (no test-suite markers in student
  notebooks; the install cell for hosted notebooks).
- :mod:`.feedback`: the ``generate_feedback`` preprocessor and page template (no hidden tests,
  errors in words, answers waiting for a person marked as such).
- :mod:`.mathml`: math in Formgrader and feedback pages as MathML (no CDN needed).
- :mod:`.export`: ``nbgrader export``'s CSV, sorted, with the answers still to grade by hand.
- :mod:`.validate`: what a student's Validate shows for a failing test (the diagnosis first).
"""
