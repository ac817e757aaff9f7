"""Project: turn journal rows into tasks, subtasks, outputs and segments."""
