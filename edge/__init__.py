"""Edge: the wire contract, device drivers and the simulators of Prato."""
