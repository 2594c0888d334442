"""`airlock demo` works as printed: the exported variables drive the openai SDK, and the
personal data in a prompt reaches the model tokenised and comes back restored."""

import json
import os
import re
import signal
import subprocess
import urllib.request

import openai

from conftest import AIRLOCK


def test_demo_prints_working_instructions_and_cleans_up():
    proc = subprocess.Popen(
        [AIRLOCK, "demo", "--listen", "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    env, data_dir, mock = {}, None, None
    for line in proc.stdout:
        if m := re.match(r"\s*mock upstream\s+(http://\S+)/v1", line):
            mock = m.group(1)
        if m := re.match(r"\s*export (OPENAI_BASE_URL|OPENAI_API_KEY)=(\S+)", line):
            env[m.group(1)] = m.group(2)
        if m := re.match(r"\s*data dir\s+(\S+)", line):
            data_dir = m.group(1)
        if "Press Ctrl-C" in line:
            break
    try:
        client = openai.OpenAI(base_url=env["OPENAI_BASE_URL"], api_key=env["OPENAI_API_KEY"], max_retries=0)
        model = client.models.list().data[0].id
        # The demo model repeats the message it was sent.
        prompt = "Please email Sarah Thompson at sarah.thompson@example.com"
        stream = client.chat.completions.create(
            model=model, stream=True, messages=[{"role": "user", "content": prompt}]
        )
        text = "".join(c.choices[0].delta.content or "" for c in stream)
        assert text == prompt
        sent = json.load(urllib.request.urlopen(f"{mock}/mock/last-request"))
        seen = sent["body"]["messages"][-1]["content"]
        assert seen == "Please email <PERSON_1> at <EMAIL_ADDRESS_1>", seen
        assert os.path.isdir(data_dir)
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
    assert not os.path.exists(data_dir), "the temporary demo directory was left behind"
