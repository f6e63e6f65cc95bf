"""Ingest: MQTT data batches → validated readings → InfluxDB; the rest to dead-letter."""
