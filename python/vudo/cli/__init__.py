"""The `vudo` command line (same HTTP API as the dashboard)."""
