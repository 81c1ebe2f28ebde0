"""batch-rotate: rotate BitLocker recovery keys of Intune-managed devices through Graph $batch."""

__version__ = "0.1.0"
