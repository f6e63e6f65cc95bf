"""Cloud: everything behind the broker, in layers (docs/architecture.md)."""
