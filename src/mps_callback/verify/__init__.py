"""Verify: is this body an MPS notification, is it genuine, and what must not be kept of it."""
