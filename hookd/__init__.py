"""hookd: a self-hosted outbound-webhook engine."""

__version__ = "0.1.0"
