"""Engines behind one small protocol: forward a request, abort it, and say what else they can do."""
