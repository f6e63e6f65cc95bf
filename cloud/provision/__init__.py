"""Provisioning and broker security: CA, identity registry, Mosquitto password/ACL/config."""
