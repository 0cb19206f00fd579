"""Data: format readers, the uint8 cache and the Lightning datamodule."""
