"""Pure RFC 8461 / RFC 8460 code: no I/O, no clock, no globals."""
