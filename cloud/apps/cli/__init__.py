"""Command-line front ends: they parse flags and call the wiring in `cloud.apps`."""
