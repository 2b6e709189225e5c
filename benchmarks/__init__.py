"""Benchmarks of the Backprop Lab Kit: ``python3 kit.py bench [--quick]`` (``python -m
benchmarks.run``) times a training step of the lecture's MLP five ways (:mod:`.mlp_step`,
:mod:`.steps`), each solution notebook's Run All, the grading of a class and
``import lab_utils`` (:mod:`.classroom`), and writes ``docs/benchmarks.md``."""
