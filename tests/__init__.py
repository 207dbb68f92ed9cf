"""Trial tests of the reactive hub."""
