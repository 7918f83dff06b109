"""Dense continual-learning baselines (task-incremental, one head per task).

Every module of this package is imported here, and each registers its methods on import: adding a baseline
is one new file (plus its test), with no list to update.
"""

import importlib
import pkgutil

for _module in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
    importlib.import_module(f"{__name__}.{_module.name}")
