"""Compares every AWS request of the Rust functions and of the Python peer,
body by body, each run against a fresh moto whose ledger has the `active`
index, in two scenarios:

- happy: schedule → trigger (GILD_MAX_PARALLEL_BUILDS unset: 20 slots, all
  three families start), then bake-finished for the first family's bake;
- queue: GILD_MAX_PARALLEL_BUILDS=1 and GILD_START_CONCURRENCY=1 (so the
  order is fixed): schedule → trigger (one bake starts, two are queued),
  then the same schedule again (a redelivery: Query and refused claims).

    /tmp/peer-venv/bin/python bench/python/compare_wire.py \
        [--trigger target/lambda/trigger/bootstrap] \
        [--bake-finished target/lambda/bake-finished/bootstrap]

Owner tokens, epoch seconds, build uuids, AMI and snapshot ids (and the
AMI's hash in the test build's token) are masked; everything else must be
equal. In the happy scenario the trigger's per-family calls run concurrently
in both, so they are compared as a multiset after GetBranch, GetFile and
Query. The handlers' responses are compared too, build ids masked. Exits 1
on a difference.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler

import test_peer as tp


def body_recorder(moto, codecommit, calls):
    """A proxy before moto and the CodeCommit stand-in keeping each request's body."""

    class Proxy(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            target = self.headers.get("X-Amz-Target")
            scope = self.headers.get("Authorization", "").split("Credential=")[-1].split("/")
            service = scope[3] if len(scope) > 3 else "?"
            if target:
                operation, params = target.rsplit(".", 1)[-1], json.loads(body or b"{}")
            else:  # query protocol (EC2)
                params = dict(urllib.parse.parse_qsl(body.decode()))
                operation = params.pop("Action", "?")
                params.pop("Version", None)
            calls.append((service, operation, params))
            upstream = codecommit if target and target.startswith("CodeCommit") else moto
            tp.forward(self, upstream, body)

    return Proxy


def invoke_binary(binary, event, env):
    api = type("Api", (tp.RuntimeApi,), {"event": event, "answer": None, "done": threading.Event(), "served": False})
    server, address = tp.serve(api)
    process = subprocess.Popen([binary], env={**env, "AWS_LAMBDA_RUNTIME_API": address, "PATH": os.environ["PATH"]},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        api.done.wait(60)
    finally:
        process.kill()
        output = process.communicate()[0].decode(errors="replace")
        server.shutdown()
    return api.answer, output


SCENARIOS = {
    # name: (extra env, the invocations after the first trigger)
    "happy": ({}, "bake_finished"),
    "queue": ({"GILD_MAX_PARALLEL_BUILDS": "1", "GILD_START_CONCURRENCY": "1"}, "trigger"),
}


def run(kind, binaries, scenario):
    """One scenario with one implementation; returns ([(handler, calls)], [responses], AMI or None)."""
    extra, second = SCENARIOS[scenario]
    moto, endpoint = tp.start_moto()
    calls = []
    codecommit_server, codecommit = tp.serve(tp.CodeCommit)
    proxy_server, proxy = tp.serve(body_recorder(endpoint, f"http://{codecommit}", calls))
    try:
        aws = {"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
               "AWS_SECRET_ACCESS_KEY": "testing", "AWS_EC2_METADATA_DISABLED": "true"}
        os.environ.update(aws, AWS_ENDPOINT_URL=endpoint)
        import boto3

        topic = tp.create_stack(boto3)
        env = {**aws, "AWS_ENDPOINT_URL": f"http://{proxy}", "AWS_ENDPOINT_URL_CODECOMMIT": f"http://{proxy}",
               "GILD_REPOSITORY": tp.REPOSITORY, "GILD_LEDGER_TABLE": "gild-ledger", "GILD_BAKE_PROJECT": "gild-bake",
               "GILD_TEST_PROJECT": "gild-test", "GILD_TRACKED_BRANCH": "main", "GILD_TOPIC_ARN": topic,
               "AWS_LAMBDA_FUNCTION_NAME": "gild-bench", "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "128",
               "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST", "AWS_LAMBDA_LOG_GROUP_NAME": "/aws/lambda/gild-bench",
               "AWS_LAMBDA_LOG_STREAM_NAME": "2026/11/25/[$LATEST]0", "TZ": ":UTC", **extra}

        def invoke(handler, event):
            if kind == "python":
                answer, output = tp.run_through_ric(f"gild_peer.{handler}.handler", event, env)
            else:
                answer, output = invoke_binary(binaries[handler], event, env)
            if not answer or answer[0] != "response":
                sys.exit(f"{kind} {handler} failed: {answer}\n{output[-3000:]}")
            return answer[1]

        schedule = json.loads((tp.EVENTS / "schedule.json").read_text())
        outcome = invoke("trigger", schedule)
        trigger_calls = list(calls)
        calls.clear()
        if second == "trigger":  # the same event again
            again = invoke("trigger", schedule)
            return [("trigger", trigger_calls), ("trigger (redelivery)", list(calls))], [outcome, again], None
        family = tp.FAMILIES[0]
        build_id = next(s["build_id"] for s in outcome["started"] if s["family"] == family)
        env_vars = next(p["environmentVariablesOverride"] for _, op, p in trigger_calls if op == "StartBuild"
                        and {"name": "GILD_FAMILY", "type": "PLAINTEXT", "value": family} in p["environmentVariablesOverride"])
        image, _ = tp.baked_image(boto3.client("ec2"), build_id)
        report = invoke("bake_finished", tp.bake_event({"id": build_id, "env": env_vars}, image))
        return [("trigger", trigger_calls), ("bake_finished", list(calls))], [outcome, report], image
    finally:
        proxy_server.shutdown()
        codecommit_server.shutdown()
        moto.kill()
        moto.wait()


def masked(calls, image):
    text = json.dumps(calls)
    if image:
        text = text.replace(image, "<ami>")
    text = re.sub(r"gild-(bake|test):[0-9a-f-]{36}", r"gild-\1:<uuid>", text)
    text = re.sub(r"snap-[0-9a-f]+", "<snap>", text)
    text = re.sub(r"(test-[0-9a-f]{32})-[0-9a-f]{16}", r"\1-<ami hash>", text)
    text = re.sub(r'"N": "1[0-9]{9}"', '"N": "<epoch>"', text)
    text = re.sub(r'"S": "[0-9]+-[0-9a-f]+-[0-9]+"', '"S": "<owner>"', text)
    return json.loads(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trigger", default=str(tp.ROOT / "target/lambda/trigger/bootstrap"))
    parser.add_argument("--bake-finished", default=str(tp.ROOT / "target/lambda/bake-finished/bootstrap"))
    parser.add_argument("--scenario", choices=sorted(SCENARIOS), action="append",
                        help="run only these scenarios (default: all)")
    args = parser.parse_args()
    same = True
    for scenario in args.scenario or list(SCENARIOS):
        rust = run("rust", {"trigger": args.trigger, "bake_finished": args.bake_finished}, scenario)
        python = run("python", {}, scenario)
        for (name, rust_calls), (_, python_calls) in zip(rust[0], python[0]):
            r, p = masked(rust_calls, rust[2]), masked(python_calls, python[2])
            print(f"== {scenario}: {name} ({len(r)} requests)")
            print("  rust:  ", " ".join(f"{s}.{o}" for s, o, _ in r))
            print("  python:", " ".join(f"{s}.{o}" for s, o, _ in p))
            if scenario == "happy" and name == "trigger":
                def key(call):
                    return json.dumps(call, sort_keys=True)

                r = r[:3] + sorted(r[3:], key=key)
                p = p[:3] + sorted(p[3:], key=key)
            for a, b in zip(r, p):
                if a != b:
                    same = False
                    print(f"  DIFF {a[0]}.{a[1]} / {b[0]}.{b[1]}\n    rust:   {json.dumps(a[2], sort_keys=True)}"
                          f"\n    python: {json.dumps(b[2], sort_keys=True)}")
            if len(r) != len(p):
                same = False
                print(f"  DIFF: rust made {len(r)} calls, python {len(p)}")
        for (name, _), r, p in zip(rust[0], rust[1], python[1]):
            r, p = masked(r, rust[2]), masked(p, python[2])
            if r != p:
                same = False
                print(f"  DIFF {scenario}: {name} response\n    rust:   {json.dumps(r, sort_keys=True)}"
                      f"\n    python: {json.dumps(p, sort_keys=True)}")
            else:
                print(f"  {name} response: same ({', '.join(f'{k} {len(v)}' for k, v in r.items() if isinstance(v, list))})")
    print("the same requests" if same else "requests differ")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
