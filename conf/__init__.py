"""The config tree (Hydra) every command composes from, installed as ``ssad.conf``."""
