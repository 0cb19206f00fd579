"""ssad: self-supervised anomaly detection by self-distillation and negative sampling (Rafiee et al., 2022)."""

__version__ = "0.1.0"
