"""The official anthropic SDK through Airlock's /v1/messages, to a vLLM-style upstream
(mock-upstream): messages, streams, tools, and errors in Anthropic's shape."""

import anthropic
import pytest

from conftest import WEATHER_PARAMETERS

WEATHER = {
    "name": "get_weather",
    "description": "Weather for a city",
    "input_schema": WEATHER_PARAMETERS,
}
ASK = [{"role": "user", "content": "Weather in Oslo?"}]


def sdk(instance, key):
    # The SDK adds /v1/messages to the base URL itself.
    return anthropic.Anthropic(base_url=instance.base_url.removesuffix("/v1"), api_key=key, max_retries=0)


@pytest.fixture(scope="module")
def claude(instance):
    return sdk(instance, instance.key)


def test_message(claude):
    m = claude.messages.create(
        model="chat-model", max_tokens=5, system="Be brief.", messages=[{"role": "user", "content": "Hello"}]
    )
    assert m.type == "message" and m.role == "assistant" and m.model == "chat-model"
    assert m.content[0].type == "text" and len(m.content[0].text.split()) == 5
    assert m.stop_reason == "max_tokens"
    assert m.usage.output_tokens == 5 and m.usage.input_tokens > 0


def test_stream_reassembles_exactly(claude):
    with claude.messages.stream(model="chat-model", max_tokens=6, messages=ASK) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert len(text.split()) == 6
    assert final.content[0].text == text
    assert final.stop_reason == "max_tokens"
    assert final.usage.output_tokens == 6 and final.usage.input_tokens > 0


def test_tool_use_and_results(claude):
    m = claude.messages.create(model="chat-model", max_tokens=200, tools=[WEATHER], messages=ASK)
    assert m.stop_reason == "tool_use"
    use = next(b for b in m.content if b.type == "tool_use")
    assert use.name == "get_weather" and set(use.input) == {"city", "days"}

    follow_up = claude.messages.create(
        model="chat-model",
        max_tokens=5,
        tools=[WEATHER],
        messages=[
            *ASK,
            {"role": "assistant", "content": m.content},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "sunny, 18 C"}]},
        ],
    )
    assert follow_up.type == "message"

    with claude.messages.stream(model="chat-model", max_tokens=200, tools=[WEATHER], messages=ASK) as stream:
        final = stream.get_final_message()
    use = next(b for b in final.content if b.type == "tool_use")
    assert final.stop_reason == "tool_use"
    assert use.name == "get_weather" and set(use.input) == {"city", "days"}


def test_count_tokens_matches_the_usage_of_the_same_request(claude):
    m = claude.messages.create(model="chat-model", max_tokens=3, system="Be brief.", tools=[WEATHER], messages=ASK)
    counted = claude.messages.count_tokens(model="chat-model", system="Be brief.", tools=[WEATHER], messages=ASK)
    assert counted.input_tokens == m.usage.input_tokens > 0


def test_models_list_in_anthropic_shape(claude):
    models = list(claude.models.list())
    assert "chat-model" in [m.id for m in models]
    assert all(m.type == "model" and m.created_at.year >= 2026 for m in models)


def test_errors_are_anthropic_errors(instance, claude):
    with pytest.raises(anthropic.AuthenticationError) as denied:
        sdk(instance, "ak-not-a-key").messages.create(model="chat-model", max_tokens=5, messages=ASK)
    assert denied.value.body["error"]["type"] == "authentication_error"
    with pytest.raises(anthropic.NotFoundError):
        claude.messages.create(model="no-such-model", max_tokens=5, messages=ASK)
    with pytest.raises(anthropic.BadRequestError) as bad:
        claude.messages.create(
            model="chat-model", max_tokens=5, messages=[{"role": "user", "content": [{"type": "video"}]}]
        )
    assert "video" in bad.value.body["error"]["message"]


@pytest.fixture(scope="module")
def anthropic_mock():
    from conftest import start, stop

    proc, addr = start(
        ["mock-upstream", "--listen", "127.0.0.1:0", "--flavor", "anthropic", "--api-key", "sk-mock"],
        r"listening on http://(\S+)",
    )
    yield f"http://{addr}"
    stop(proc)


def test_the_anthropic_flavoured_mock_speaks_anthropic(anthropic_mock):
    """The simulator stands in for Anthropic's API: the official SDK must parse it."""
    direct = anthropic.Anthropic(base_url=anthropic_mock, api_key="sk-mock", max_retries=0)
    m = direct.messages.create(model="mock-llama", max_tokens=4, messages=ASK)
    assert m.content[0].type == "text" and len(m.content[0].text.split()) == 4
    assert m.stop_reason == "max_tokens" and m.usage.output_tokens == 4
    with direct.messages.stream(model="mock-llama", max_tokens=200, tools=[WEATHER], messages=ASK) as stream:
        final = stream.get_final_message()
    use = next(b for b in final.content if b.type == "tool_use")
    assert final.stop_reason == "tool_use" and set(use.input) == {"city", "days"}
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=anthropic_mock, api_key="wrong", max_retries=0).messages.create(
            model="mock-llama", max_tokens=4, messages=ASK
        )
    with pytest.raises(anthropic.InternalServerError):
        direct.messages.create(model="mock-llama", max_tokens=4, messages=ASK, extra_body={"mock_fault": "500"})


@pytest.fixture(scope="module")
def via_anthropic_upstream(anthropic_mock):
    """An Airlock whose model `claude-chat` is served by an Anthropic-API upstream."""
    import json
    import tempfile
    from pathlib import Path

    from conftest import run, start, stop

    with tempfile.TemporaryDirectory() as directory:
        run(["init", "--dir", directory, "--upstream-url", "http://127.0.0.1:9/v1"])
        config = Path(directory) / "airlock.yaml"
        (Path(directory) / "claude.key").write_text("sk-mock\n")
        text = config.read_text().replace("listen: 127.0.0.1:8080", "listen: 127.0.0.1:0")
        text = text.replace(
            "upstreams:\n",
            f"upstreams:\n  claude:\n    kind: anthropic\n    base_url: {anthropic_mock}/v1\n    api_key_file: claude.key\n",
            1,
        )
        config.write_text(text.replace("models:\n", "models:\n  claude-chat:\n    upstream: claude\n    model: mock-llama\n", 1))
        key = json.loads(run(["keys", "create", "--config", str(config), "--tenant", "t", "--json"]))["key"]
        gateway, addr = start(["serve", "--config", str(config)], r"listening on http://(\S+)")
        yield f"http://{addr}/v1", key
        stop(gateway)


def test_openai_sdk_through_an_anthropic_upstream(via_anthropic_upstream):
    import json

    import openai

    base_url, key = via_anthropic_upstream
    client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0)
    r = client.chat.completions.create(
        model="claude-chat", max_tokens=5, messages=[{"role": "system", "content": "Be brief."}, *ASK]
    )
    assert r.object == "chat.completion" and r.choices[0].finish_reason == "length"
    assert len(r.choices[0].message.content.split()) == 5
    assert r.usage.completion_tokens == 5 and r.usage.prompt_tokens > 0

    stream = client.chat.completions.create(model="claude-chat", max_tokens=6, messages=ASK, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert len(text.split()) == 6

    tools = [{"type": "function", "function": {"name": WEATHER["name"], "description": WEATHER["description"],
                                               "parameters": WEATHER["input_schema"]}}]
    r = client.chat.completions.create(model="claude-chat", max_tokens=200, messages=ASK, tools=tools)
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and set(json.loads(call.function.arguments)) == {"city", "days"}
    stream = client.chat.completions.create(model="claude-chat", max_tokens=200, messages=ASK, tools=tools, stream=True)
    name, args = None, ""
    for chunk in stream:
        for tc in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            name = tc.function.name or name
            args += tc.function.arguments or ""
    assert name == "get_weather" and set(json.loads(args)) == {"city", "days"}


def test_structured_output_through_an_anthropic_upstream(via_anthropic_upstream):
    import json

    import openai

    base_url, key = via_anthropic_upstream
    client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0)
    schema = {"type": "json_schema", "json_schema": {"name": "weather", "schema": WEATHER["input_schema"]}}
    r = client.chat.completions.create(model="claude-chat", max_tokens=200, messages=ASK, response_format=schema)
    assert r.choices[0].finish_reason == "stop" and not r.choices[0].message.tool_calls
    assert set(json.loads(r.choices[0].message.content)) == {"city", "days"}
    stream = client.chat.completions.create(
        model="claude-chat", max_tokens=200, messages=ASK, response_format=schema, stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert set(json.loads(text)) == {"city", "days"}
