"""The operator dashboard: server-rendered pages (routes.py) and the live stream (live.py) over a Platform."""
