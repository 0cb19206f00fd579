"""The structured-config schema, the keys each config node accepts, and start-up validation."""
