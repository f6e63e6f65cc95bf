"""The kernel every feature shares; imports nothing of ours but edge.contract (docs/architecture.md)."""
