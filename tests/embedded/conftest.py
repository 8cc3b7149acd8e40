import pytest
from openai import AsyncOpenAI

from kvbaton.middleware.embedded import EngineSettings, create_engine_app


@pytest.fixture
def make_app():
    def make(**settings):
        settings.setdefault("profile", "demo-tiny")
        settings.setdefault("time_scale", 0.02)
        return create_engine_app(EngineSettings(**settings))

    return make


@pytest.fixture
async def client(aiohttp_client, make_app):
    return await aiohttp_client(make_app())


@pytest.fixture
async def openai_client(client):
    base_url = str(client.make_url("/v1"))
    async with AsyncOpenAI(base_url=base_url, api_key="test", max_retries=0) as oc:
        yield oc
