"""Query API: read the projections (tasks, subtasks, outputs, segments) and the journal."""
