"""The wiring: which stores, plugins and services each process gets (docs/architecture.md)."""
