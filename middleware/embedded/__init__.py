"""The embedded engine behind an HTTP server: SGLang-native and OpenAI APIs in real time.

`create_engine_app` builds the aiohttp app; `serve_engine` / `run_engine` run it. Output
text is synthetic; timings, cache hits and queueing come from `kvbaton.middleware.engine`.
"""

from .app import create_engine_app, run_engine, serve_engine
from .runner import EngineRunner
from .settings import EngineSettings

__all__ = ["EngineRunner", "EngineSettings", "create_engine_app", "run_engine", "serve_engine"]
