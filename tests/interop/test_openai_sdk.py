"""The official `openai` Python SDK used through Airlock exactly as against vLLM."""

import json
import signal
import sqlite3
import threading
import time
from pathlib import Path

import openai
import pytest

from conftest import WEATHER_PARAMETERS, make_instance, stop, start


@pytest.fixture
def client(instance):
    return openai.OpenAI(base_url=instance.base_url, api_key=instance.key, max_retries=0)


def test_non_streaming_chat(client):
    r = client.chat.completions.create(
        model="chat-model",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello there"}],
        max_tokens=7,
        extra_body={"top_k": 20, "chat_template_kwargs": {"enable_thinking": False}},
    )
    assert r.object == "chat.completion"
    assert r.choices[0].message.role == "assistant"
    assert len(r.choices[0].message.content.split()) == 7
    assert r.usage.completion_tokens == 7
    assert r.usage.prompt_tokens > 0


def test_streaming_chat_reassembles_exactly(client):
    full = client.chat.completions.create(
        model="chat-model", messages=[{"role": "user", "content": "Tell me a story"}], max_tokens=25
    ).choices[0].message.content
    stream = client.chat.completions.create(
        model="chat-model", messages=[{"role": "user", "content": "Tell me a story"}], max_tokens=25, stream=True
    )
    parts, finish = [], None
    for chunk in stream:
        assert chunk.choices, "the usage chunk the client did not ask for leaked through"
        parts.append(chunk.choices[0].delta.content or "")
        finish = chunk.choices[0].finish_reason or finish
    assert "".join(parts) == full
    assert finish in ("stop", "length")


def test_streaming_with_usage_requested(client):
    stream = client.chat.completions.create(
        model="chat-model",
        messages=[{"role": "user", "content": "hi"}],
        max_tokens=4,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[-1].usage.completion_tokens == 4
    assert chunks[-1].choices == []


def test_tool_calls_pass_through(client):
    tools = [{
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": WEATHER_PARAMETERS,
        },
    }]
    r = client.chat.completions.create(
        model="chat-model", messages=[{"role": "user", "content": "Weather in Oslo?"}], tools=tools
    )
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather"
    assert set(json.loads(call.function.arguments)) == {"city", "days"}

    stream = client.chat.completions.create(
        model="chat-model", messages=[{"role": "user", "content": "Weather in Oslo?"}], tools=tools, stream=True
    )
    name, args = None, ""
    for chunk in stream:
        for tc in chunk.choices[0].delta.tool_calls or []:
            name = tc.function.name or name
            args += tc.function.arguments or ""
    assert name == "get_weather"
    assert set(json.loads(args)) == {"city", "days"}


def test_completions_and_embeddings(client):
    r = client.completions.create(model="chat-model", prompt="Once upon a time", max_tokens=5)
    assert r.object == "text_completion"
    assert len(r.choices[0].text.split()) == 5
    # The SDK asks for base64 by default and decodes it.
    e = client.embeddings.create(model="chat-model", input=["alpha", "beta"])
    assert len(e.data) == 2
    assert len(e.data[0].embedding) > 0
    assert abs(sum(x * x for x in e.data[0].embedding) - 1.0) < 1e-3
    f = client.embeddings.create(model="chat-model", input="alpha", encoding_format="float")
    assert [round(x, 5) for x in f.data[0].embedding] == [round(x, 5) for x in e.data[0].embedding]


def test_models_list(client):
    assert [m.id for m in client.models.list()] == ["chat-model"]


def test_errors_raise_the_sdk_exceptions(instance, client):
    bad = openai.OpenAI(base_url=instance.base_url, api_key="ak-not-a-real-key", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        bad.chat.completions.create(model="chat-model", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert err.value.body["code"] == "model_not_found"
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(
            model="chat-model", messages=[{"role": "user", "content": "x"}], extra_body={"mock_fault": "429"}
        )
    with pytest.raises(openai.APIError):
        stream = client.chat.completions.create(
            model="chat-model",
            messages=[{"role": "user", "content": "x"}],
            max_tokens=50,
            stream=True,
            extra_body={"mock_fault": "stream_error"},
        )
        for _ in stream:
            pass


def test_revocation_applies_to_the_next_request(instance):
    created = json.loads(
        __import__("subprocess").run(
            [__import__("conftest").AIRLOCK, "keys", "create", "--config", instance.config, "--tenant", "temp", "--json"],
            check=True, capture_output=True, text=True,
        ).stdout
    )
    c = openai.OpenAI(base_url=instance.base_url, api_key=created["key"], max_retries=0)
    c.models.list()
    __import__("subprocess").run(
        [__import__("conftest").AIRLOCK, "keys", "revoke", "--config", instance.config, created["id"]], check=True
    )
    with pytest.raises(openai.AuthenticationError):
        c.models.list()


def test_sigterm_drains_in_flight_streams_and_logs_every_request(mock_upstream, tmp_path):
    inst = make_instance(mock_upstream, str(tmp_path))
    c = openai.OpenAI(base_url=inst.base_url, api_key=inst.key, max_retries=0)
    result = {}

    def slow_stream():
        # 400 tokens/s in the mock: about a second of streaming.
        s = c.chat.completions.create(
            model="chat-model", messages=[{"role": "user", "content": "long"}], max_tokens=400, stream=True
        )
        result["text"] = "".join(ch.choices[0].delta.content or "" for ch in s)

    t = threading.Thread(target=slow_stream)
    t.start()
    time.sleep(0.3)
    inst.gateway.send_signal(signal.SIGTERM)
    t.join(timeout=30)
    assert inst.gateway.wait(timeout=30) == 0
    assert len(result["text"].split()) == 400, "the in-flight stream was cut by shutdown"
    rows = sqlite3.connect(tmp_path / "requests.db").execute(
        "SELECT status, stream, completion_tokens FROM request_log"
    ).fetchall()
    assert rows == [(200, 1, 400)]
