"""The `geofence` rule kind (README.md beside this file); importing it registers it."""

from cloud.rules.kinds.geofence.rule import Geofence, GeofenceConfig

__all__ = ["Geofence", "GeofenceConfig"]
