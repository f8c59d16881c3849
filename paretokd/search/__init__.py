"""The search: the study in Optuna storage, the space and sampler, one trial, the loop, the picks.

Modules: ``storage`` (opening a study, its identity and objective), ``space``
and ``sampler``, ``context`` (what every trial shares), ``trial`` (the
objective), ``loop`` (running trials, time accounting), ``teacher_timing``
(the teacher's latency and drift), ``reference`` (the hand-crafted student),
``recommend`` (one pick per budget), ``artifacts`` (files in Optuna's artifact
store), ``proxy`` (validate-proxy). Only this package and ``report`` know Optuna.
"""
