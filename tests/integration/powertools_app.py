"""A small web app written the way Lambda handlers are written with Powertools for AWS Lambda
(Python) and its event handler: one set of routes, registered on three resolvers, one Lambda
handler per event format.

    handler_v2   APIGatewayHttpResolver   API Gateway HTTP API / payload 2.0   (function app-v2)
    handler_v1   APIGatewayRestResolver   API Gateway REST API / payload 1.0   (function app-v1)
    handler_alb  ALBResolver              ALB target, single- or multi-value   (function app-alb)

Routes:
    GET  /todos/<todo_id>   path parameter, query (?q=… and repeated ?tag=…), a header echo
    POST /todos             JSON body -> 201 with the created todo as JSON
    GET  /login             302 to /todos/1 with two Set-Cookie cookies
    GET  /image             a small PNG (binary: base64 in the proxy response, compression off)
    GET  /whoami            the request's cookies as the app sees them
    GET  /boom              raises (an unhandled function error)
anything else: the resolver's own 404 {"statusCode":404,"message":"Not found"}.

Every JSON answer carries "format" (v2, v1, alb) so a test can tell which handler served it.
Nothing here knows about Envoy or the filter: it is plain Powertools code.
"""
from __future__ import annotations

import base64
from typing import Any, Callable

from aws_lambda_powertools.event_handler import (
    ALBResolver,
    APIGatewayHttpResolver,
    APIGatewayRestResolver,
    Response,
)
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.shared.cookies import Cookie, SameSite

# A 1x1 transparent PNG; its bytes include values that are not valid UTF-8 (0x89, 0xff...).
PNG_1X1 = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/PchI7wAAAABJRU5ErkJggg=="
)

app_v2 = APIGatewayHttpResolver()
app_v1 = APIGatewayRestResolver()
# ALB sends query strings as received (percent-encoded); ask Powertools to decode them for
# resolved_query_string_parameters, as an ALB app usually does.
app_alb = ALBResolver(decode_query_parameters=True)

FORMATS: dict[str, ApiGatewayResolver] = {"v2": app_v2, "v1": app_v1, "alb": app_alb}


def _header(app: ApiGatewayResolver, name: str) -> str | None:
    """A request header, whatever the event shape: resolved_headers_field is the single-value
    map, or multiValueHeaders when the event has them (v1, ALB multi-value mode, where
    current_event.headers is empty)."""
    value = app.current_event.resolved_headers_field.get(name)
    if isinstance(value, list):
        return ",".join(value)
    return value


def register(app: ApiGatewayResolver, fmt: str) -> None:
    @app.get("/todos/<todo_id>")
    def get_todo(todo_id: str) -> dict[str, Any]:
        event = app.current_event
        # resolved_query_string_parameters works for every shape (payload 2.0 joins repeated keys
        # with ","; v1 and ALB have multiValueQueryStringParameters; ALB multi-value events have
        # no queryStringParameters at all, so get_query_string_value would find nothing there).
        query = event.resolved_query_string_parameters
        multi: list[str] = []
        if fmt != "v2":  # payload 2.0 has no multiValueQueryStringParameters
            multi = event.get_multi_value_query_string_values("tag")
        return {
            "format": fmt,
            "id": todo_id,
            "path": event.path,
            "method": event.http_method,
            "q": (query.get("q") or [None])[-1],
            "tags": query.get("tag", []),
            "tags_multi": multi,
            "echo": _header(app, "x-echo"),
            "repeated": _header(app, "x-repeated"),
        }

    @app.post("/todos")
    def create_todo() -> tuple[dict[str, Any], int]:
        todo = app.current_event.json_body
        return {"format": fmt, "created": todo, "id": 101}, 201

    @app.get("/login")
    def login() -> Response:
        return Response(
            status_code=302,
            headers={"Location": "/todos/1"},
            cookies=[
                Cookie(name="session", value="s3cr3t-id", path="/", http_only=True, same_site=SameSite.LAX_MODE),
                Cookie(name="theme", value="dark", path="/", secure=False),
            ],
        )

    @app.get("/image")
    def image() -> Response:
        return Response(status_code=200, content_type="image/png", body=PNG_1X1, compress=False)

    @app.get("/whoami")
    def whoami() -> dict[str, Any]:
        event = app.current_event
        raw = event.cookies if fmt == "v2" else _header(app, "cookie")
        return {"format": fmt, "raw": raw, "cookies": event.resolved_cookies_field}

    @app.get("/boom")
    def boom() -> dict[str, Any]:
        raise RuntimeError(f"kaboom from {fmt}")


for _fmt, _app in FORMATS.items():
    register(_app, _fmt)


def handler_v2(event: dict, context: Any) -> dict[str, Any]:
    return app_v2.resolve(event, context)


def handler_v1(event: dict, context: Any) -> dict[str, Any]:
    return app_v1.resolve(event, context)


def handler_alb(event: dict, context: Any) -> dict[str, Any]:
    return app_alb.resolve(event, context)


# Lambda function name -> handler, as the local runtime (lambda_runtime.py) deploys them.
FUNCTIONS: dict[str, Callable[[dict, Any], Any]] = {
    "app-v2": handler_v2,
    "app-v1": handler_v1,
    "app-alb": handler_alb,
}
