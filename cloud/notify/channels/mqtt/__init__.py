"""The `mqtt` notification channel (README.md beside this file); importing it registers it."""

from cloud.notify.channels.mqtt.channel import Mqtt, MqttConfig

__all__ = ["Mqtt", "MqttConfig"]
