"""The worksite registry: road works planned, coordinated and published (issue 8)."""
