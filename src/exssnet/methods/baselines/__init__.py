"""Dense continual-learning baselines (task-incremental, one head per task); each module registers its methods."""

from exssnet.methods.baselines import (  # noqa: F401  (register the baseline methods)
    agem,
    der,
    er,
    ewc,
    individual,
    joint,
    lwf,
    naive,
    si,
)

BASELINE_METHODS = ("naive", "ewc", "online-ewc", "si", "lwf", "agem", "er", "der", "derpp", "joint", "individual")
