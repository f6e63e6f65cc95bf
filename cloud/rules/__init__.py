"""Rules: declarative checks over the live stream that raise and resolve alerts.

The rule kinds are plug-in folders under `cloud/rules/kinds/`, the detectors that score series
under `cloud/rules/detectors/`; `engine.py` runs them.
"""
