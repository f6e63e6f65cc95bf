"""Public transport: GTFS feeds per operator, their GeoJSON, and the GTFS-Realtime reader."""
