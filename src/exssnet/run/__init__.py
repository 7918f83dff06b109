"""The run driver: runner, resume, run hooks, evaluation, sweep."""
