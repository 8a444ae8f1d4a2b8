#!/usr/bin/env python3
"""The stack template with the optional parts switched on, for checkov.

Usage: condition_variant.py TEMPLATE OUT_JSON

checkov evaluates a template's Conditions with the parameters' defaults and
does not scan resources whose condition is false. With the defaults
(SourceType CODECOMMIT, SlackEnabled false, no email) that leaves out the
GitHub webhook, its secrets, slack-notify and its queue, so `make
infra-lint` also scans this variant: the same template (read with
cfn-lint's YAML decoder, so the short-form intrinsics survive) with only
the defaults below changed, written as JSON. Every resource, and every
checkov skip in a resource's Metadata, is the template's own.
"""

import json
import sys

from cfnlint.decode import decode

# Defaults that turn every Condition of the template true (the GITHUB
# values are placeholders of the right shape; the Rules section needs them).
DEFAULTS = {
    "SourceType": "GITHUB",
    "GitHubConnectionArn": "arn:aws:codeconnections:us-east-1:123456789012:connection/00000000-0000-0000-0000-000000000000",
    "GitHubRepository": "example-org/gild-images",
    "SlackEnabled": "true",
    "NotificationEmail": "gild-operators@example.com",
    "AutoScalingKeyAccess": "true",
}


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    template, matches = decode(sys.argv[1])
    if matches or template is None:
        for match in matches:
            print(match, file=sys.stderr)
        return 1
    parameters = template["Parameters"]
    for name, value in DEFAULTS.items():
        if name not in parameters:
            print(f"parameter {name} is not in {sys.argv[1]}", file=sys.stderr)
            return 1
        parameters[name]["Default"] = value
    with open(sys.argv[2], "w", encoding="utf-8") as out:
        json.dump(template, out, indent=1)
        out.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
