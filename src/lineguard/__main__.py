from lineguard.cli import app

app()
