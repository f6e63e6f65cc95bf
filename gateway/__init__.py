"""Gateway: the street agent that reads sensors and streams their readings over MQTT."""
