"""Store: the database tables, the engine and the migrations."""
