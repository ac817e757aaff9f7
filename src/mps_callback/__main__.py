from mps_callback.cli import app

app()
