"""Runs the matrix scenario (../scenario.py) with a client written in another language: the
program given after `--` serves the scenario's primitives as JSON lines on stdin/stdout.

Request:  {"op": "produce", "args": [topic, [[key, value, [[hk, hv], ...]], ...], acks, codec]}
Answer:   {"ok": result} | {"error": "message"} | {"unsupported": "why"}
The first request is {"op": "version", "args": []}, answered with
{"ok": {"client": name, "version": v, "details": text}}.
Used for kafkajs (../kafkajs.js) and sarama (../sarama/main.go)."""
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import scenario  # noqa: E402

OPS = ["topics", "create_topic", "produce", "consume", "end_offset", "offset_for_time",
       "group_consume", "committed", "describe_configs", "delete_topic"]


class RemoteError(Exception):
    pass


class Remote:
    def __init__(self, cmd):
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     bufsize=1)

    def call(self, op, *args):
        self.proc.stdin.write(json.dumps({"op": op, "args": list(args)}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RemoteError(f"{op}: client process exited with {self.proc.wait(10)}")
        answer = json.loads(line)
        if "unsupported" in answer:
            raise scenario.Unsupported(answer["unsupported"])
        if "error" in answer:
            raise RemoteError(answer["error"])
        return answer["ok"]

    def __getattr__(self, op):
        if op not in OPS:
            raise AttributeError(op)

        def method(*args):
            result = self.call(op, *args)
            if op == "topics":
                return set(result)
            if op == "consume":
                return [(k, v, [tuple(h) for h in hs]) for k, v, hs in result]
            return result
        return method

    def close(self):
        try:
            self.proc.stdin.close()
            self.proc.wait(15)
        except Exception:  # noqa: BLE001
            self.proc.kill()


if __name__ == "__main__":
    split = sys.argv.index("--")
    cmd, sys.argv = sys.argv[split + 1:], sys.argv[:split]
    a = scenario.args()
    probe = Remote(cmd + [a.bootstrap])
    info = probe.call("version")
    scenario.main(lambda _bootstrap: probe, info["client"], info["version"], info.get("details", ""))
