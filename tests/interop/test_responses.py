"""The openai SDK's Responses API through Airlock's stateless /v1/responses, served by a
chat-only (vLLM-style) upstream: text, streams, function calls, structured outputs, and
what needs state refused in OpenAI's error shape."""

import json

import openai
import pytest
from pydantic import BaseModel

from conftest import WEATHER_PARAMETERS

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Weather for a city",
    "parameters": {**WEATHER_PARAMETERS, "additionalProperties": False},
    "strict": True,
}


class Forecast(BaseModel):
    city: str
    days: int


@pytest.fixture(scope="module")
def client(instance):
    return openai.OpenAI(base_url=instance.base_url, api_key=instance.key, max_retries=0)


def test_text_response(client):
    r = client.responses.create(model="chat-model", instructions="Be brief.", input="Hello there", max_output_tokens=7)
    assert r.object == "response" and r.id.startswith("resp_") and r.model == "chat-model"
    assert r.status == "incomplete" and r.incomplete_details.reason == "max_output_tokens"
    assert len(r.output_text.split()) == 7
    assert r.usage.output_tokens == 7 and r.usage.input_tokens > 0
    assert r.output[0].type == "message" and r.output[0].role == "assistant"


def test_stream_reassembles_into_the_final_response(client):
    # Cut by max_output_tokens, the stream ends with `response.incomplete`, as OpenAI's
    # does (the SDK's stream helper waits for `response.completed`, so read it raw).
    events = list(client.responses.create(model="chat-model", input="Tell me a story", max_output_tokens=12, stream=True))
    assert events[0].type == "response.created" and events[-1].type == "response.incomplete"
    assert [e.sequence_number for e in events] == list(range(len(events)))
    final = events[-1].response
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == final.output_text and len(deltas.split()) == 12
    assert final.usage.output_tokens == 12 and final.id == events[0].response.id


def test_function_calls_round_trip(client):
    r = client.responses.create(model="chat-model", input="Weather in Oslo?", tools=[WEATHER], tool_choice="required")
    call = next(item for item in r.output if item.type == "function_call")
    assert call.name == "get_weather" and set(json.loads(call.arguments)) == {"city", "days"}
    assert call.call_id and call.id.startswith("fc_")

    follow_up = client.responses.create(
        model="chat-model",
        input=[
            {"role": "user", "content": "Weather in Oslo?"},
            call.model_dump(exclude_none=True),
            {"type": "function_call_output", "call_id": call.call_id, "output": "sunny, 18 C"},
        ],
        tools=[WEATHER],
        tool_choice="none",
        max_output_tokens=5,
    )
    assert follow_up.output_text

    with client.responses.stream(model="chat-model", input="Weather?", tools=[WEATHER], tool_choice="required") as s:
        final = s.get_final_response()
    streamed = next(item for item in final.output if item.type == "function_call")
    assert set(json.loads(streamed.arguments)) == {"city", "days"}


def test_structured_output_parses(client):
    parsed = client.responses.parse(model="chat-model", input="Forecast?", text_format=Forecast)
    assert isinstance(parsed.output_parsed, Forecast)


def test_what_needs_state_is_refused(client):
    with pytest.raises(openai.BadRequestError) as refused:
        client.responses.create(model="chat-model", input="hi", previous_response_id="resp_123")
    assert "stateless" in refused.value.message
    # OpenAI's built-in tools cannot run on-prem: left out by default (`tools.hosted: drop`),
    # and the answer says so.
    raw = client.responses.with_raw_response.create(
        model="chat-model", input="hi", tools=[{"type": "web_search", "external_web_access": False}]
    )
    assert raw.headers["x-airlock-dropped-tools"] == "web_search"
    assert raw.parse().status == "completed"
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="no-such-model", input="hi")
