"""Training loops and the run driver."""
