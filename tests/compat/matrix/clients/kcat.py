"""kcat (librdkafka CLI) driver for the client matrix (see ../scenario.py). kcat has no admin
commands (create/describe/delete topics, committed offsets): those steps are reported as
unsupported, and the topic is auto-created by the first produce."""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import scenario  # noqa: E402

ACKS = {0: "0", 1: "1", -1: "all"}
SEP = "\x1f"  # field separator in the consume format


def version():
    out = subprocess.run(["kcat", "-V"], capture_output=True, text=True).stdout
    v = re.search(r"Version ([\w.\-]+)", out)
    lib = re.search(r"librdkafka ([\w.\-]+)", out)
    return (v.group(1) if v else "unknown"), (f"librdkafka {lib.group(1)}" if lib else "")


class Client:
    def __init__(self, bootstrap):
        self.bootstrap = bootstrap

    def kcat(self, *args, input=None, timeout=60):
        r = subprocess.run(["kcat", "-b", self.bootstrap, *args], input=input, capture_output=True,
                           timeout=timeout, text=True)
        if r.returncode != 0:
            raise RuntimeError(f"kcat {' '.join(args)} exited {r.returncode}: {r.stderr.strip()[-500:]}")
        return r.stdout

    def topics(self):
        out = self.kcat("-L", "-J")
        import json
        return {t["topic"] for t in json.loads(out)["topics"]}

    def create_topic(self, topic):
        raise scenario.Unsupported("kcat has no admin commands")

    def produce(self, topic, msgs, acks, codec):
        # Headers (-H) apply to every record of one kcat run: one run per distinct header set.
        runs = []
        for k, v, h in msgs:
            if runs and runs[-1][0] == h:
                runs[-1][1].append((k, v))
            else:
                runs.append((h, [(k, v)]))
        for h, kvs in runs:
            args = ["-P", "-t", topic, "-p", "0", "-X", f"acks={ACKS[acks]}", "-z", codec or "none"]
            for hk, hv in h:
                args += ["-H", f"{hk}={hv}"]
            if any(k is not None for k, _ in kvs):
                args += ["-K", SEP]
                data = "".join(f"{k}{SEP}{v}\n" for k, v in kvs)
            else:
                data = "".join(f"{v}\n" for _, v in kvs)
            self.kcat(*args, input=data)

    def _parse(self, out):
        rows = []
        for line in out.splitlines():
            k, v, h = line.split(SEP)
            headers = [tuple(x.split("=", 1)) for x in h.split(",")] if h else []
            rows.append((None if k == "" else k, v, headers))
        return rows

    def consume(self, topic, offset, count, timeout):
        out = self.kcat("-C", "-t", topic, "-p", "0", "-o", str(offset), "-c", str(count), "-e",
                        "-f", f"%k{SEP}%s{SEP}%h\\n", timeout=timeout)
        return self._parse(out)

    def _query(self, topic, ts):
        out = self.kcat("-Q", "-t", f"{topic}:0:{ts}")
        m = re.search(r"offset (-?\d+)", out)
        scenario.check(m is not None, f"unexpected kcat -Q output {out!r}")
        return int(m.group(1))

    def end_offset(self, topic):
        return self._query(topic, -1)

    def offset_for_time(self, topic, ts_ms):
        return self._query(topic, ts_ms)

    def group_consume(self, topic, group, count, timeout):
        # -G: balanced consumer; -e exits at the end of the partition; offsets are auto-committed
        # and committed on close.
        out = self.kcat("-G", group, topic, "-X", "auto.offset.reset=earliest", "-X",
                        "session.timeout.ms=6000", "-e", "-f", f"%s{SEP}\\n", timeout=timeout)
        return [line.split(SEP)[0] for line in out.splitlines()]

    def committed(self, topic, group):
        raise scenario.Unsupported("kcat cannot query committed offsets")

    def describe_configs(self, topic):
        raise scenario.Unsupported("kcat has no admin commands")

    def delete_topic(self, topic):
        raise scenario.Unsupported("kcat has no admin commands")


if __name__ == "__main__":
    v, details = version()
    scenario.main(Client, "kcat", v, details)
