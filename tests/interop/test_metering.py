"""Cost, budgets and rate limits as the official SDKs see them: the cost header on a raw
response, streams that still reassemble exactly with the cost comment before their end,
and Airlock's own 429s raised as the SDKs' rate-limit errors."""

import json
import tempfile
import time
import urllib.request
from decimal import Decimal
from pathlib import Path

import anthropic
import openai
import pytest

from conftest import run, start, stop

PRICED = "pricing:\n  models:\n    mock-llama: {input: 2.0, output: 8.0}\n"
ASK = [{"role": "user", "content": "Count to three"}]


class Metered:
    def __init__(self, base_url, config, key, key_id, token):
        self.base_url, self.config, self.key, self.key_id, self.token = base_url, config, key, key_id, token

    def admin(self, method, path, body):
        request = urllib.request.Request(
            self.base_url.removesuffix("/v1") + path, data=json.dumps(body).encode(), method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"})
        with urllib.request.urlopen(request) as response:
            return json.loads(response.read())


@pytest.fixture(scope="module")
def metered(mock_upstream):
    with tempfile.TemporaryDirectory() as directory:
        run(["init", "--dir", directory, "--upstream-url", f"http://{mock_upstream}/v1",
             "--model", "chat-model", "--upstream-model", "mock-llama"])
        config = Path(directory) / "airlock.yaml"
        config.write_text(config.read_text().replace("listen: 127.0.0.1:8080", "listen: 127.0.0.1:0") + PRICED)
        c = ["--config", str(config)]
        run(["tenants", *c, "create", "finance"])
        run(["tenants", *c, "users", "--tenant", "finance", "--create", "fiona@bank.example"])
        key = json.loads(run(["keys", "create", *c, "--tenant", "finance", "--user", "fiona@bank.example", "--json"]))
        token = json.loads(run(["admin", "token", "create", *c, "--name", "t", "--role", "super-admin", "--json"]))["token"]
        gateway, addr = start(["serve", *c], r"listening on http://(\S+)")
        yield Metered(f"http://{addr}/v1", str(config), key["key"], key["id"], token)
        stop(gateway)


def cost(text):
    value = Decimal(text)
    assert value > 0 and value.as_tuple().exponent == -9, text
    return value


def test_the_cost_header_and_the_chargeback_agree(metered):
    client = openai.OpenAI(base_url=metered.base_url, api_key=metered.key, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(model="chat-model", messages=ASK, max_tokens=5)
    completion = raw.parse()
    usage = completion.usage
    expected = Decimal(usage.prompt_tokens * 2 + usage.completion_tokens * 8) / Decimal(10**6)
    assert cost(raw.headers["x-airlock-cost-usd"]) == expected
    # The request log is written in batches a few milliseconds apart.
    for _ in range(50):
        report = json.loads(run(["report", "chargeback", "--config", metered.config, "--from", "2020-01-01",
                                 "--to", "2100-01-01", "--by", "user", "--format", "json"]))
        if report["rows"]:
            break
        time.sleep(0.05)
    assert report["rows"][0]["id"] == "fiona@bank.example"
    assert Decimal(report["total"]["cost_usd"]) == expected


def test_streams_reassemble_with_the_cost_comment_before_their_end(metered):
    client = openai.OpenAI(base_url=metered.base_url, api_key=metered.key, max_retries=0)
    whole = client.chat.completions.create(model="chat-model", messages=ASK, max_tokens=6)
    stream = client.chat.completions.create(model="chat-model", messages=ASK, max_tokens=6, stream=True,
                                            stream_options={"include_usage": True})
    text, usage = "", None
    for chunk in stream:
        if chunk.choices:
            text += chunk.choices[0].delta.content or ""
        usage = chunk.usage or usage
    assert text == whole.choices[0].message.content
    assert usage.completion_tokens == 6
    # The comment is there for whoever reads the raw stream.
    raw = urllib.request.Request(
        metered.base_url + "/chat/completions", method="POST",
        data=json.dumps({"model": "chat-model", "messages": ASK, "max_tokens": 6, "stream": True}).encode(),
        headers={"Authorization": f"Bearer {metered.key}", "Content-Type": "application/json"})
    with urllib.request.urlopen(raw) as response:
        body = response.read().decode()
    comment = next(line for line in body.splitlines() if line.startswith(": x-airlock-cost-usd: "))
    cost(comment.removeprefix(": x-airlock-cost-usd: "))
    assert body.rstrip().endswith("data: [DONE]")

    claude = anthropic.Anthropic(base_url=metered.base_url.removesuffix("/v1"), api_key=metered.key, max_retries=0)
    with claude.messages.stream(model="chat-model", max_tokens=6, messages=ASK) as events:
        streamed = "".join(events.text_stream)
        final = events.get_final_message()
    assert streamed == whole.choices[0].message.content
    assert final.usage.output_tokens == 6


def test_budgets_and_rate_limits_raise_the_sdks_rate_limit_errors(metered):
    client = openai.OpenAI(base_url=metered.base_url, api_key=metered.key, max_retries=0)
    metered.admin("PUT", "/admin/rate-limits", {"tenant": "finance", "scope": "key", "subject": metered.key_id,
                                                "requests_per_minute": 1})
    try:
        client.chat.completions.create(model="chat-model", messages=ASK, max_tokens=2)
        with pytest.raises(openai.RateLimitError) as limited:
            client.chat.completions.create(model="chat-model", messages=ASK, max_tokens=2)
        assert limited.value.code == "rate_limited"
        assert int(limited.value.response.headers["retry-after"]) >= 1
    finally:
        limits = metered.admin("GET", "/admin/rate-limits", {})["rate_limits"]
        for limit in limits:
            metered.admin("DELETE", f"/admin/rate-limits/{limit['id']}", {})

    # A budget too small for one request: refused before it goes upstream.
    metered.admin("PUT", "/admin/budgets", {"tenant": "finance", "scope": "user", "subject": "fiona@bank.example",
                                            "window": "daily", "limit_usd": 0.00001})
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model="chat-model", messages=ASK, max_tokens=100)
    assert refused.value.code == "budget_exceeded"
    assert refused.value.type == "insufficient_quota"
    claude = anthropic.Anthropic(base_url=metered.base_url.removesuffix("/v1"), api_key=metered.key, max_retries=0)
    with pytest.raises(anthropic.RateLimitError):
        claude.messages.create(model="chat-model", max_tokens=100, messages=ASK)
