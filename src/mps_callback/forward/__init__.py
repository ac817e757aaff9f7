"""Forward: tell downstream systems and people what happened, one event per change.

The layer below the outbox and the forwarder: the event value (`event.py`), the sink
configuration read from ``MPS_FORWARD_CONFIG`` (`config.py`) and the sinks themselves, one
module per kind behind one table (`sinks/`). It imports nothing from the layers above it.
"""
