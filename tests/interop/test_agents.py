"""The coding-agent CLIs — Claude Code, Codex CLI and Gemini CLI, from npm at the versions
pinned in tests/interop/agents/package.json — run non-interactively through Airlock, with
an on-prem model name, to `airlock mock-upstream` playing a scripted model: a text turn,
and a tool turn in which the CLI lists a directory with its own tool and the result goes
back to the model. Asserts on what the CLI printed and on what the upstream received."""

import json
import os
import subprocess
import tempfile
import urllib.request
from pathlib import Path

import pytest

from conftest import make_instance, start, stop

AGENTS_BIN = os.environ.get("AIRLOCK_AGENTS_BIN")
MODEL = "onprem-coder"
# Words the scripted model answers with: seeing them printed proves the answer came back.
TEXT_ANSWER = "Greetings from the on-prem model."
TOOL_ANSWER = "Listing received, two files."
# The files in the listed directory; the second request carries them in a tool result.
# Names the NER model does not take for a person even when glued to an escaped newline
# (`\\nzebra` from a JSON-encoded tool result was, in some runs), so they are not tokenised.
FILES = ("4471-build.log", "5582-notes.log")

pytestmark = pytest.mark.skipif(
    not AGENTS_BIN, reason="tests/interop/run.sh installs the CLIs and sets AIRLOCK_AGENTS_BIN"
)


def script(listing):
    """The scripted model. A turn is picked by a marker in the request's latest input, the
    first in file order winning: Gemini CLI's first request lists the working directory,
    file names included, so the answer to the listing comes after the turns that start one."""
    listing = str(listing)
    return {
        "turns": [
            {"match": "marker-text-turn", "text": TEXT_ANSWER},
            {
                "match": "marker-tool-turn",
                # Each CLI names its shell or listing tool its own way: the first declared wins.
                "tool_calls": [{"options": [
                    {"name": "Bash", "arguments": {"command": f"ls {listing}", "description": "List files"}},
                    {"name": "exec_command", "arguments": {"cmd": f"ls {listing}"}},
                    {"name": "list_directory", "arguments": {"dir_path": listing}},
                ]}],
            },
            {"match": FILES[0], "text": TOOL_ANSWER},
        ]
    }


class Scripted:
    def __init__(self, instance, mock_addr, workdir):
        self.instance = instance
        self.mock_addr = mock_addr
        self.workdir = workdir
        self.listing = Path(workdir) / "listing"
        self.gateway_root = instance.base_url.removesuffix("/v1")

    def upstream_requests(self):
        with urllib.request.urlopen(f"http://{self.mock_addr}/mock/requests") as answer:
            return json.load(answer)


@pytest.fixture(scope="module")
def scripted():
    with tempfile.TemporaryDirectory() as workdir:
        listing = Path(workdir) / "listing"
        listing.mkdir()
        for name in FILES:
            (listing / name).write_text("data\n")
        script_path = Path(workdir) / "script.json"
        script_path.write_text(json.dumps(script(listing)))
        mock, mock_addr = start(
            ["mock-upstream", "--listen", "127.0.0.1:0", "--models", MODEL,
             "--script", str(script_path), "--record-requests"],
            r"listening on http://(\S+)",
        )
        # Governed as `airlock demo` governs: personal data tokenised, the baseline pack.
        instance = make_instance(
            mock_addr, str(Path(workdir) / "airlock"), MODEL, MODEL,
            extra_config="pii:\n  actions: {default: tokenise, by_class: {SECRET: mask}}\n",
            policy=Path(__file__).parents[2] / "policies/baseline/policy.yaml",
        )
        yield Scripted(instance, mock_addr, workdir)
        stop(instance.gateway)
        stop(mock)


def agent_home(scripted, agent):
    """A fresh HOME holding the CLI's own settings for Airlock, as docs/agents.md describes."""
    home = Path(tempfile.mkdtemp(dir=scripted.workdir, prefix=f"home-{agent}-"))
    if agent == "codex":
        (home / ".codex").mkdir()
        (home / ".codex" / "config.toml").write_text(
            f'model = "{MODEL}"\n'
            'model_provider = "airlock"\n'
            "[model_providers.airlock]\n"
            'name = "Airlock"\n'
            f'base_url = "{scripted.instance.base_url}"\n'
            'env_key = "AIRLOCK_API_KEY"\n'
            'wire_api = "responses"\n'
        )
    if agent == "gemini":
        (home / ".gemini").mkdir()
        (home / ".gemini" / "settings.json").write_text(
            json.dumps({"security": {"auth": {"selectedType": "gemini-api-key"}}})
        )
    return home


def run_agent(scripted, agent, prompt):
    """Runs one CLI non-interactively in the work directory; returns what it printed."""
    key = scripted.instance.key
    home = agent_home(scripted, agent)
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "TERM": "dumb", "NO_COLOR": "1"}
    if agent == "claude":
        env |= {
            "ANTHROPIC_BASE_URL": scripted.gateway_root,
            "ANTHROPIC_API_KEY": key,
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        }
        command = ["claude", "-p", prompt, "--model", MODEL, "--allowedTools", "Bash(ls:*)"]
    elif agent == "codex":
        env |= {"AIRLOCK_API_KEY": key}
        command = ["codex", "exec", "--skip-git-repo-check",
                   "--dangerously-bypass-approvals-and-sandbox", prompt]
    else:
        env |= {
            "GOOGLE_GEMINI_BASE_URL": scripted.gateway_root,
            "GEMINI_API_KEY": key,
            "GEMINI_CLI_TRUST_WORKSPACE": "true",
        }
        command = ["gemini", "-p", prompt, "-m", MODEL]
    command[0] = str(Path(AGENTS_BIN) / command[0])
    done = subprocess.run(
        command, cwd=scripted.workdir, env=env, capture_output=True, text=True,
        timeout=180, stdin=subprocess.DEVNULL,
    )
    printed = done.stdout + done.stderr
    assert done.returncode == 0, f"{agent} exited {done.returncode}:\n{printed[-4000:]}"
    return done.stdout


def text_of(content):
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return content or ""


def requests_since(scripted, before):
    return scripted.upstream_requests()[before:]


AGENTS = ["claude", "codex", "gemini"]


@pytest.mark.parametrize("agent", AGENTS)
def test_text_turn(scripted, agent):
    before = len(scripted.upstream_requests())
    printed = run_agent(scripted, agent, "Say hello. marker-text-turn")
    assert TEXT_ANSWER in printed
    received = requests_since(scripted, before)
    assert received, "no request reached the upstream"
    turn = next(r for r in received if "marker-text-turn" in json.dumps(r))
    # The on-prem name reached the upstream, in the upstream's (chat) format, tools as functions.
    assert turn["model"] == MODEL
    # The CLI's own system prompt is found but not rewritten (pii.roles), so the agent
    # keeps its instructions; Claude Code's names its maker, which NER takes for a name.
    system = text_of(turn["messages"][0]["content"])
    assert turn["messages"][0]["role"] == "system" and "<PERSON" not in system
    if agent == "claude":
        assert "built on Anthropic's Claude Agent SDK" in system
    assert turn["tools"] and all(t["type"] == "function" for t in turn["tools"])


@pytest.mark.parametrize("agent", AGENTS)
def test_tool_turn(scripted, agent):
    before = len(scripted.upstream_requests())
    printed = run_agent(scripted, agent, f"List the files in {scripted.listing}. marker-tool-turn")
    received = requests_since(scripted, before)
    assert TOOL_ANSWER in printed, (printed, [r["messages"][-2:] for r in received])
    # The CLI ran its own tool and sent the listing back as a tool result.
    answered = [r for r in received if r["messages"][-1]["role"] == "tool"]
    assert answered, [m["role"] for r in received for m in r["messages"]]
    messages = answered[-1]["messages"]
    assert all(name in text_of(messages[-1]["content"]) for name in FILES), messages[-3:]
    call = next(m for m in reversed(messages) if m.get("tool_calls"))["tool_calls"][0]
    assert call["function"]["name"] in ("Bash", "exec_command", "list_directory")
    assert call["id"] == messages[-1]["tool_call_id"]
