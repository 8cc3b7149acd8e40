"""The inference APIs the proxy understands, named by their canonical paths."""

from enum import StrEnum

__all__ = ["Route", "route_of"]


class Route(StrEnum):
    """An API family; the value is its canonical path, so a Route is also a valid path."""

    CHAT = "/v1/chat/completions"
    RESPONSES = "/v1/responses"
    COMPLETIONS = "/v1/completions"
    GENERATE = "/generate"


_BY_PATH = {route.value: route for route in Route}


def route_of(path: str) -> Route | None:
    """The API family of a request path (``/v1`` optional, query and trailing ``/`` ignored)."""
    path = path.split("?", 1)[0].rstrip("/")
    if not path.startswith("/"):
        path = "/" + path
    return _BY_PATH.get(path) or _BY_PATH.get("/v1" + path)
