"""Where the API lives."""

API_PREFIX = "/api/v1"
