"""examples/dispatcher: one Lambda function, three operations, chosen by Envoy's route.

The route's `custom_parameters` (route metadata, see envoy.yaml) tell the function what to do:

* with `"payload": "apigw_v2"` they arrive as `event["stageVariables"]`, and the answer is an
  API Gateway proxy response (`statusCode`, `headers`, `body`);
* with `"payload": "passthrough"` they arrive as the `custom_parameters` field that the filter
  merges into the JSON body, and the answer (plain JSON) is the response body.

The client cannot choose the action: the filter takes it from the route, never from the
request. Deploy with handler `handler.lambda_handler` (Python 3.12).
"""
from __future__ import annotations

import json

# A stand-in for a real store (a DynamoDB table, an IdP's API …). A warm execution environment
# keeps it between invocations; a new one starts empty again.
RESOURCES = {
    "reports": {"owner": "finance"},
    "builds": {"owner": "platform"},
}
GRANTS: dict[str, set[str]] = {"reports": {"alice"}}


def list_resources(args: dict) -> tuple[int, dict]:
    return 200, {"resources": [
        {"name": name, "owner": r["owner"], "users": sorted(GRANTS.get(name, ()))}
        for name, r in sorted(RESOURCES.items())
    ]}


def grant_access(args: dict) -> tuple[int, dict]:
    user, resource = args.get("user"), args.get("resource")
    if not user or resource not in RESOURCES:
        return 400, {"error": "need 'user' and a known 'resource'", "resources": sorted(RESOURCES)}
    GRANTS.setdefault(resource, set()).add(user)
    return 200, {"granted": {"user": user, "resource": resource}}


def revoke_access(args: dict) -> tuple[int, dict]:
    user, resource = args.get("user"), args.get("resource")
    if not user or resource not in RESOURCES:
        return 400, {"error": "need 'user' and a known 'resource'", "resources": sorted(RESOURCES)}
    if user not in GRANTS.get(resource, set()):
        return 404, {"error": f"{user} has no access to {resource}"}
    GRANTS[resource].discard(user)
    return 200, {"revoked": {"user": user, "resource": resource}}


ACTIONS = {
    "list-resources": list_resources,
    "grant-access": grant_access,
    "revoke-access": revoke_access,
}


def lambda_handler(event: dict, context) -> dict:
    if isinstance(event, dict) and "requestContext" in event and "rawPath" in event:
        # API Gateway payload 2.0 (the filter's apigw_v2): parameters are stage variables;
        # arguments come from the query string and, for writes, the JSON body.
        params = event.get("stageVariables") or {}
        args = dict(event.get("queryStringParameters") or {})
        if event.get("body"):
            args.update(json.loads(event["body"]))
        status, answer = dispatch(params, args)
        return {"statusCode": status, "headers": {"content-type": "application/json"},
                "body": json.dumps(answer)}
    # passthrough: the body is the event, custom_parameters merged into it by the filter.
    params = event.pop("custom_parameters", None) or {}
    status, answer = dispatch(params, event)
    if status != 200:
        # No HTTP status in passthrough mode: fail the invocation (a function error, which the
        # filter answers with function_error_status and the message).
        raise ValueError(answer["error"])
    return answer


def dispatch(params: dict, args: dict) -> tuple[int, dict]:
    action = ACTIONS.get(params.get("action", ""))
    if action is None:
        return 400, {"error": f"unknown action {params.get('action')!r}", "actions": sorted(ACTIONS)}
    status, answer = action(args)
    return status, {"action": params["action"], "tenant": params.get("tenant"), **answer}
