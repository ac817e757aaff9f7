"""What the tests share: databases, the service (in this process or as a real one), bodies, checks.

Test modules import from here (or get fixtures from ``tests/conftest.py``), never from
another test module, so that any test file can run alone and in any order.
"""
