"""Identity-policy evaluation as AWS does it, for one principal's policies.

The condition operators come from principalmapper 1.1.5
(``principalmapper.querying.local_policy_simulation``), the only maintained-
looking local evaluator on PyPI that handles String*/Arn*/Bool/Numeric/Date/
IpAddress/Null, ``...IfExists`` and ``ForAnyValue:``/``ForAllValues:``. Its
last release is from 2022, and where it differs from AWS this module corrects
it; each correction has a test in test_evaluate.py quoting the AWS page that
decides the case:

- Resource matching is case-sensitive in AWS (principalmapper matches ARNs
  case-insensitively), so resources are matched here, with policy variables
  (``${aws:userid}``, ``${aws:username}``, ``${*}``, ``${?}``, ``${$}``) and
  NotResource. A variable whose key is not in the request matches nothing.
- Policy variables are also substituted in condition values (principalmapper
  leaves ``${...}`` in them literally).
- ``StringNotEquals``/``StringNotLike``/``ArnNotEquals``/``ArnNotLike`` on a
  key absent from the request are true (principalmapper says false for
  StringNotLike): "If the key that you specify in a policy condition is not
  present in the request context, the values do not match ... if the policy
  condition requires that the key is not matched, such as StringNotLike or
  ArnNotLike, and the right key is not present, the condition is true"
  (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html).

The decision is the identity-policy part of AWS's evaluation logic
(https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html):
an explicit Deny in any statement wins, else any Allow allows, else the
request is implicitly denied. A request that authorizes several resources
(RunInstances authorizes the instance, its volumes, interface, subnet...) is
allowed only if every one of them is.

Not modelled: SCPs and RCPs, permission boundaries, session policies,
resource-based policies (key policies, bucket policies, trust policies),
cross-account rules, and the service-side rules of which keys a request
carries: the caller supplies the request context.
"""

from __future__ import annotations

import collections
import collections.abc
import copy
import re
from dataclasses import dataclass, field

# principalmapper 1.1.5 imports collections.Mapping, removed in Python 3.10;
# the alias is what that import expected, so its behaviour is unchanged.
for _name in ("Mapping", "MutableMapping"):
    if not hasattr(collections, _name):
        setattr(collections, _name, getattr(collections.abc, _name))

from principalmapper.querying import local_policy_simulation as _pmapper
from principalmapper.util.case_insensitive_dict import CaseInsensitiveDict

NEGATED_OPERATORS = ("StringNotEquals", "StringNotLike", "ArnNotEquals", "ArnNotLike")
_VARIABLE = re.compile(r"\$\{([^}]*)\}")


@dataclass(frozen=True)
class Decision:
    """The answer for one request: allowed or not, which statements decided
    it, and a sentence saying why (naming the refused resource)."""

    allowed: bool
    matched_statement_sids: tuple[str, ...]
    reason: str
    refused_resource: str | None = None
    near_misses: tuple[str, ...] = field(default=())


def _lookup(context: dict, key: str):
    """Condition keys are case-insensitive in AWS."""
    lowered = key.lower()
    for k, v in context.items():
        if k.lower() == lowered:
            return True, v
    return False, None


def _substitute(text: str, context: dict, *, as_pattern: bool) -> str | None:
    """Replaces ${key} by the request's value; None when a key is missing or
    multi-valued (AWS then finds no match). In patterns the substituted value
    is escaped so a '*' in a user name is not a wildcard."""

    missing = False

    def repl(m: re.Match) -> str:
        nonlocal missing
        name = m.group(1)
        if name in ("*", "?", "$"):
            return "\0" + name if as_pattern else name
        found, value = _lookup(context, name)
        if not found or isinstance(value, list):
            missing = True
            return ""
        value = str(value)
        if as_pattern:
            return value.replace("*", "\0*").replace("?", "\0?")
        return value

    out = _VARIABLE.sub(repl, text)
    return None if missing else out


def _pattern_matches(pattern: str, value: str, context: dict) -> bool:
    """ARN/action-style glob: * any run, ? one character, case-sensitive."""
    text = _substitute(pattern, context, as_pattern=True)
    if text is None:
        return False
    regex = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\0":
            regex.append(re.escape(text[i + 1]))
            i += 2
            continue
        regex.append(".*" if ch == "*" else "." if ch == "?" else re.escape(ch))
        i += 1
    return re.fullmatch("".join(regex), value, flags=re.DOTALL) is not None


def _listify(value) -> list:
    return value if isinstance(value, list) else [value]


def _resource_matches(statement: dict, resource: str, context: dict) -> bool:
    if "Resource" in statement:
        return any(
            _pattern_matches(p, resource, context)
            for p in _listify(statement["Resource"])
        )
    if "NotResource" in statement:
        return not any(
            _pattern_matches(p, resource, context)
            for p in _listify(statement["NotResource"])
        )
    return False  # an identity policy statement needs one of the two


def _prepare_condition(condition: dict, context: dict) -> dict:
    """Substitutes policy variables in values and drops negated checks on
    absent keys (true in AWS), before principalmapper evaluates the rest."""
    prepared: dict = {}
    for operator, checks in condition.items():
        base = operator.split(":", 1)[-1]
        kept = {}
        for key, values in checks.items():
            if (
                base.removesuffix("IfExists") in NEGATED_OPERATORS
                and not _lookup(context, key)[0]
            ):
                continue
            resolved = []
            for value in _listify(values):
                if isinstance(value, bool):
                    value = "true" if value else "false"
                value = str(value)
                if "${" in value:
                    value = _substitute(value, context, as_pattern=False)
                    if value is None:
                        continue
                resolved.append(value)
            if not resolved and not base.startswith(("Null",)):
                # every value named a missing variable: nothing can match,
                # except a negated operator, which is then true
                if base.removesuffix("IfExists") in NEGATED_OPERATORS:
                    continue
                resolved = ["\0no-value"]
            kept[key] = resolved
        if kept:
            prepared[operator] = kept
    return prepared


def _context_for_pmapper(context: dict) -> CaseInsensitiveDict:
    out = {}
    for k, v in context.items():
        if isinstance(v, bool):
            v = "true" if v else "false"
        elif isinstance(v, list):
            v = [str(x) for x in v]
        else:
            v = str(v)
        out[k] = v
    return CaseInsensitiveDict(out)


def _statement_applies(
    statement: dict, action: str, resource: str, context: dict
) -> tuple[bool, bool]:
    """(action and resource match, and the condition holds as well)."""
    probe = {
        k: v for k, v in statement.items() if k in ("Effect", "Action", "NotAction")
    }
    probe["Resource"] = "*"
    if not _pmapper.policy_has_matching_statement(
        {"Statement": [probe]},
        statement["Effect"],
        action,
        resource,
        CaseInsensitiveDict({}),
    ):
        return False, False
    if not _resource_matches(statement, resource, context):
        return False, False
    if "Condition" not in statement:
        return True, True
    condition = _prepare_condition(statement["Condition"], context)
    return True, _pmapper._get_condition_match(condition, _context_for_pmapper(context))


def _statements(policies: list[dict]):
    """Yields (label, statement) for every statement of every policy; a policy
    is a document or {"PolicyName", "PolicyDocument"}."""
    for n, policy in enumerate(policies):
        name = policy.get("PolicyName", f"policy{n}")
        document = policy.get("PolicyDocument", policy)
        for i, statement in enumerate(_listify(document.get("Statement", []))):
            yield statement.get("Sid") or f"{name}#{i}", statement


def evaluate(
    policies: list[dict],
    action: str,
    resources: list[str],
    context: dict,
    resource_context: dict[str, dict] | None = None,
) -> Decision:
    """Evaluates one request: ``action`` on every ARN in ``resources`` with
    the request context ``context`` (plus ``resource_context[arn]`` for keys
    that differ per resource, such as aws:ResourceTag/*)."""
    policies = copy.deepcopy(policies)
    allowed_by: list[str] = []
    for resource in resources or ["*"]:
        ctx = dict(context)
        ctx.update((resource_context or {}).get(resource, {}))
        allows, denies, misses = [], [], []
        for label, statement in _statements(policies):
            matched, holds = _statement_applies(statement, action, resource, ctx)
            if not matched:
                continue
            if not holds:
                if statement["Effect"] == "Allow":
                    misses.append(label)
                continue
            (denies if statement["Effect"] == "Deny" else allows).append(label)
        if denies:
            return Decision(
                False,
                tuple(denies),
                f"{action} on {resource}: explicitly denied by {', '.join(denies)}",
                resource,
            )
        if not allows:
            why = f"{action} on {resource}: no statement allows it (implicit deny)"
            if misses:
                why += f"; conditions not met in {', '.join(misses)}"
            return Decision(False, (), why, resource, tuple(misses))
        allowed_by.extend(s for s in allows if s not in allowed_by)
    return Decision(
        True, tuple(allowed_by), f"{action}: allowed by {', '.join(allowed_by)}"
    )
