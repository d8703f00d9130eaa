"""The HTTP API (/v1), the dashboard and the spirit pages."""
