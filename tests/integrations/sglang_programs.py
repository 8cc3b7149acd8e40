"""SGLang frontend programs run against a proxy (``python sglang_programs.py PROXY_URL``).

Run by ``test_sglang_frontend.py`` with a Python that has ``sglang`` installed (kvbaton need
not be): ``gen`` and ``select`` in one program, a fork, and a batch of three programs. It
prints one JSON object with what each program produced.
"""

from __future__ import annotations

import json
import sys
import time

import sglang as sgl

TOOLS = ["search", "calculator", "none"]


def run_tool(name: str) -> str:
    time.sleep(0.05)  # the tool runs in Python, between two calls
    return {"search": "3 results", "calculator": "42"}.get(name, "nothing")


@sgl.function
def agent(s, task: str):  # type: ignore[no-untyped-def]
    s += sgl.system("You are a careful agent. Think, pick one tool, read its result, answer.")
    s += sgl.user(task)
    s += sgl.assistant(sgl.gen("plan", max_tokens=12))
    s += sgl.user("Which tool do you call?")
    s += sgl.assistant(sgl.select("tool", choices=TOOLS))
    s += sgl.user("Tool result: " + run_tool(s["tool"]))
    s += sgl.assistant(sgl.gen("answer", max_tokens=12))


@sgl.function
def brainstorm(s, topic: str):  # type: ignore[no-untyped-def]
    s += "Topic: " + topic + "\n"
    forks = s.fork(2)
    for i, f in enumerate(forks):
        f += f"Idea {i + 1}:" + sgl.gen("idea", max_tokens=8, stop="\n")
    forks.join("concate_and_append")  # the forks' KV appended to this state
    s += "Best idea:" + sgl.gen("best", max_tokens=8)


def main() -> None:
    sgl.set_default_backend(sgl.RuntimeEndpoint(sys.argv[1]))
    one = agent.run(task="Find the population of Lucerne and double it.")
    ideas = brainstorm.run(topic="caching agent programs")
    batch = agent.run_batch([{"task": f"Task {i}: summarise file {i}."} for i in range(3)])
    print(
        json.dumps(
            {
                "agent": {"tool": one["tool"], "plan": one["plan"], "answer": one["answer"]},
                "brainstorm": {"best": ideas["best"]},
                "batch": [state["tool"] for state in batch],
            }
        )
    )


if __name__ == "__main__":
    main()
