"""The models and texts a study works on: the teacher, students sliced from it, the data.

Modules: ``teacher`` (loading, offline default), ``student`` (building and slicing
from the teacher), ``data`` (tables, splits, labels), ``corpus`` (the built-in
English corpus). Knows torch and transformers, not Optuna.
"""
