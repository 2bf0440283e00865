"""The cockpit: the `/_emu` control API, the dashboard's event stream, metrics, the load feed
and the dashboard's static files."""
