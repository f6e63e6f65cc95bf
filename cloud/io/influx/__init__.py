"""InfluxDB v1: line protocol and the HTTP client."""
