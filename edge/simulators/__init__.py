"""Simulators of Prato's parking, traffic and fleets, behind the same driver interface as devices."""
