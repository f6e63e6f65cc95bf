"""Grafana dashboards as code: load, check offline, run every query on InfluxDB, push to Grafana."""
