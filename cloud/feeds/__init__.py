"""Public GeoJSON feeds of what the Situation Room knows (sensor sites), for maps."""
