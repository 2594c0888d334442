"""Gemini as an upstream. The official google-genai SDK talks to the Gemini-flavoured
simulator directly (it must parse what stands in for Google's API), and the openai SDK
talks to Airlock routing to that simulator: text, streams, tools, structured outputs."""

import json
import tempfile
from pathlib import Path

import openai
import pytest
from google import genai
from google.genai import errors, types
from pydantic import BaseModel

from conftest import run, start, stop

KEY = "gm-mock-key"
MODEL = "gemini-2.5-flash"
WEATHER = types.FunctionDeclaration(
    name="get_weather",
    description="Weather for a city",
    parameters=types.Schema(
        type=types.Type.OBJECT,
        properties={"city": types.Schema(type=types.Type.STRING), "days": types.Schema(type=types.Type.INTEGER)},
        required=["city", "days"],
    ),
)


class Address(BaseModel):
    city: str


class Person(BaseModel):
    name: str
    age: int | None
    tags: list[str]
    address: Address  # a $ref into $defs, which Gemini's Schema cannot hold


@pytest.fixture(scope="module")
def gemini_mock():
    proc, addr = start(
        ["mock-upstream", "--listen", "127.0.0.1:0", "--flavor", "gemini", "--api-key", KEY, "--models", MODEL],
        r"listening on http://(\S+)",
    )
    yield addr
    stop(proc)


def sdk(addr, key=KEY):
    return genai.Client(api_key=key, http_options=types.HttpOptions(base_url=f"http://{addr}", retry_options=None))


def test_the_gemini_flavoured_mock_speaks_gemini(gemini_mock):
    client = sdk(gemini_mock)
    r = client.models.generate_content(
        model=MODEL,
        contents="Hello there",
        config=types.GenerateContentConfig(system_instruction="Be brief.", max_output_tokens=5),
    )
    assert len(r.text.split()) == 5
    assert r.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert r.usage_metadata.candidates_token_count == 5 and r.usage_metadata.prompt_token_count > 0

    streamed = list(
        client.models.generate_content_stream(
            model=MODEL, contents="Hello", config=types.GenerateContentConfig(max_output_tokens=4)
        )
    )
    assert len("".join(c.text or "" for c in streamed).split()) == 4
    assert streamed[-1].candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert streamed[-1].usage_metadata.candidates_token_count == 4

    called = client.models.generate_content(
        model=MODEL, contents="Weather in Oslo?", config=types.GenerateContentConfig(tools=[types.Tool(function_declarations=[WEATHER])])
    )
    call = called.function_calls[0]
    assert call.name == "get_weather" and set(call.args) == {"city", "days"}

    person = client.models.generate_content(
        model=MODEL,
        contents="Who?",
        config=types.GenerateContentConfig(response_mime_type="application/json", response_schema=Person),
    )
    assert isinstance(person.parsed, Person)

    models = [m.name for m in client.models.list()]
    assert f"models/{MODEL}" in models

    wrong = sdk(gemini_mock, "wrong")  # kept referenced: a collected Client closes its connection
    with pytest.raises(errors.ClientError) as bad_key:
        wrong.models.generate_content(model=MODEL, contents="Hi")
    assert bad_key.value.code == 400 and "API key not valid" in bad_key.value.message
    with pytest.raises(errors.ClientError) as missing:
        client.models.generate_content(model="no-such-model", contents="Hi")
    assert missing.value.code == 404


@pytest.fixture(scope="module")
def gemini_gateway(gemini_mock):
    """An Airlock whose `gemini-chat` model is served by the Gemini simulator."""
    with tempfile.TemporaryDirectory() as directory:
        run(["init", "--dir", directory, "--upstream-url", f"http://{gemini_mock}/v1beta", "--model", "gemini-chat",
             "--upstream-model", MODEL])
        config = Path(directory) / "airlock.yaml"
        (Path(directory) / "gemini.key").write_text(KEY + "\n")
        text = config.read_text().replace("listen: 127.0.0.1:8080", "listen: 127.0.0.1:0")
        text = text.replace("kind: openai_compatible", "kind: gemini").replace(
            f"base_url: http://{gemini_mock}/v1beta", f"base_url: http://{gemini_mock}/v1beta\n    api_key_file: gemini.key")
        config.write_text(text)
        key = json.loads(run(["keys", "create", "--config", str(config), "--tenant", "interop", "--json"]))["key"]
        gateway, addr = start(["serve", "--config", str(config)], r"listening on http://(\S+)")
        yield openai.OpenAI(base_url=f"http://{addr}/v1", api_key=key, max_retries=0)
        stop(gateway)


def test_openai_sdk_through_airlock_to_gemini(gemini_gateway):
    client = gemini_gateway
    r = client.chat.completions.create(
        model="gemini-chat", max_tokens=6, messages=[{"role": "system", "content": "Be brief."},
                                                     {"role": "user", "content": "Hello"}]
    )
    assert r.choices[0].finish_reason == "length" and len(r.choices[0].message.content.split()) == 6
    assert r.usage.completion_tokens == 6

    chunks = list(client.chat.completions.create(
        model="gemini-chat", max_tokens=6, stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": "Hello"}],
    ))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split()) == 6 and chunks[-1].usage.completion_tokens == 6

    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"], "additionalProperties": False}}}]
    with client.chat.completions.stream(model="gemini-chat", messages=[{"role": "user", "content": "Weather?"}],
                                        tools=tools, tool_choice="required") as stream:
        final = stream.get_final_completion()
    call = final.choices[0].message.tool_calls[0]
    assert final.choices[0].finish_reason == "tool_calls"
    assert call.function.name == "get_weather" and "city" in json.loads(call.function.arguments)

    parsed = client.chat.completions.parse(model="gemini-chat", messages=[{"role": "user", "content": "Who?"}],
                                           response_format=Person)
    assert isinstance(parsed.choices[0].message.parsed, Person)

    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(
            model="gemini-chat", messages=[{"role": "user", "content": "Hi"}],
            response_format={"type": "json_schema", "json_schema": {"name": "n", "schema": {
                "type": "object", "properties": {"n": {"type": "integer", "not": {"const": 3}}}}}},
        )
    assert "`not`" in refused.value.message


@pytest.fixture(scope="module")
def via_airlock(instance):
    """The google-genai SDK pointed at Airlock, whose `chat-model` is a vLLM-style upstream."""
    return sdk(instance.base_url.removeprefix("http://").removesuffix("/v1"), instance.key)


def test_google_genai_sdk_through_airlock(via_airlock, instance):
    client = via_airlock
    r = client.models.generate_content(
        model="chat-model", contents="Hello there",
        config=types.GenerateContentConfig(system_instruction="Be brief.", max_output_tokens=5),
    )
    assert len(r.text.split()) == 5 and r.candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert r.usage_metadata.candidates_token_count == 5
    counted = client.models.count_tokens(model="chat-model", contents="Hello there")
    plain = client.models.generate_content(model="chat-model", contents="Hello there",
                                           config=types.GenerateContentConfig(max_output_tokens=1))
    assert counted.total_tokens == plain.usage_metadata.prompt_token_count > 0

    chunks = list(client.models.generate_content_stream(
        model="chat-model", contents="Hello", config=types.GenerateContentConfig(max_output_tokens=4)))
    assert len("".join(c.text or "" for c in chunks).split()) == 4
    assert chunks[-1].candidates[0].finish_reason == types.FinishReason.MAX_TOKENS
    assert chunks[-1].usage_metadata.candidates_token_count == 4

    tools = types.GenerateContentConfig(tools=[types.Tool(function_declarations=[WEATHER])])
    asked = types.Content(role="user", parts=[types.Part(text="Weather in Oslo?")])
    called = client.models.generate_content(model="chat-model", contents=[asked], config=tools)
    call = called.function_calls[0]
    assert call.name == "get_weather" and set(call.args) == {"city", "days"}
    answered = client.models.generate_content(model="chat-model", config=tools, contents=[
        asked,
        called.candidates[0].content,
        types.Content(role="user", parts=[types.Part.from_function_response(name="get_weather", response={"sky": "sunny"})]),
    ])
    assert answered.candidates[0].finish_reason is not None

    person = client.models.generate_content(
        model="chat-model", contents="Who?",
        config=types.GenerateContentConfig(response_mime_type="application/json", response_schema=Person),
    )
    assert isinstance(person.parsed, Person)

    assert "models/chat-model" in [m.name for m in client.models.list()]
    denied = sdk(instance.base_url.removeprefix("http://").removesuffix("/v1"), "ak-not-a-key")
    with pytest.raises(errors.ClientError) as unauthorized:
        denied.models.generate_content(model="chat-model", contents="Hi")
    assert unauthorized.value.code == 401 and unauthorized.value.status == "UNAUTHENTICATED"
    with pytest.raises(errors.ClientError) as missing:
        client.models.generate_content(model="no-such-model", contents="Hi")
    assert missing.value.code == 404 and missing.value.status == "NOT_FOUND"
