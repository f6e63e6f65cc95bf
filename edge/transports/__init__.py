"""How bytes reach the decoders: serial lines (pyserial), pseudo-terminals, ChirpStack uplinks."""
