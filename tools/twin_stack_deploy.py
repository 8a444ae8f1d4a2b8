"""Deploy infra/template.yaml into a running moto server and write stack.json.

    python tools/twin_stack_deploy.py --endpoint http://127.0.0.1:5000 \\
        --template infra/template.yaml --param VpcId=vpc-0123456789abcdef0 ... \\
        --stack-name gild --out target/twin/stack.json

stack.json: the stack's Outputs, each resource's physical id, each
EventBridge rule's pattern (as the template defines it, resolved) and
target functions, and the resources stripped because moto cannot create
them, with why (tests/twin/stack/deploy.py, UNSUPPORTED). The same list is
printed. Exit status 1, with CloudFormation's reason, when the deploy is
refused.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from twin.stack import deploy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", required=True, help="moto server URL")
    parser.add_argument("--template", default="infra/template.yaml")
    parser.add_argument("--param", action="append", default=[], metavar="K=V")
    parser.add_argument("--stack-name", default="gild")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--account", default="123456789012", help="moto's account id")
    parser.add_argument("--out", default="stack.json")
    args = parser.parse_args(argv)
    params = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep:
            parser.error(f"--param wants K=V, got {item!r}")
        params[key] = value
    try:
        result = deploy.deploy(
            args.endpoint,
            args.template,
            params,
            args.stack_name,
            args.region,
            args.account,
        )
    except deploy.DeployError as err:
        print(f"deploy refused: {err}", file=sys.stderr)
        return 1
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(
        json.dumps(result.to_json(), indent=2) + "\n", encoding="utf-8"
    )
    print(
        f"{result.stack_name}: {result.status}, {len(result.resources)} resources in moto"
    )
    print("stripped (moto cannot create them):")
    for entry in result.stripped:
        print(f"  {entry['LogicalId']} ({entry['Type']}): {entry['Reason']}")
    for entry in result.side_created:
        print(
            f"  created beside the stack: {entry['LogicalId']} = {entry['PhysicalId']}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
