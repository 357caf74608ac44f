"""Golden-loss regression tests: recorded numbers that prove a refactor changes no behaviour."""
