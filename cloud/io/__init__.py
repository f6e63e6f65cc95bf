"""Adapters to what is outside: InfluxDB, MQTT, SQL, HTTP."""
