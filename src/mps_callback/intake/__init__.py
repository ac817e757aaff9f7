"""Intake: the front doors. Every door hands the same bytes to ``Intake.accept``."""
