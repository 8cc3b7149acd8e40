"""The proxy service: a thin aiohttp shell around the scheduling core."""
