"""mps-callback: the receiver for Tencent Cloud MPS task notifications."""

__version__ = "0.1.0"
