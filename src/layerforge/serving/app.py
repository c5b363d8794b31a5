"""The FastAPI application: routes typed from each run's manifest, one gate in front of them
(API key, body limit, access log, metrics, internal errors), and a batch worker per model.

Nothing here reads or writes a file on a request's behalf: the runs are loaded when the app is
made, and request bodies are parsed as JSON or CSV text only.
"""

import hmac
import json
import logging
import re
import time
import uuid
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import ValidationError

from .. import __version__
from ..codecs.tables import CsvText
from ..errors import LayerforgeError
from . import protocols
from .batching import Batcher, Busy
from .metrics import Metrics
from .options import ServeOptions
from .schema import ErrorBody, ModelEntry, Problem, RecommendRequest, Schemas

access_log = logging.getLogger("layerforge.serving.access")
error_log = logging.getLogger("layerforge.serving")

REF = "#/components/schemas/{model}"
JSON_MEDIA = ("application/json", "", "application/x-www-form-urlencoded")  # the last: curl -d's default
SOUND_MEDIA = ("audio/wav", "audio/x-wav", "audio/wave", "audio/flac", "audio/ogg")  # one clip in the body
PROTECTED = ("/v1/", "/v2/models", "/metrics")
_PREDICT = re.compile(r"^/v1/models/([^/:]+)(/predict|:predict|/recommend)$"
                      r"|^/v2/models/([^/]+)(/infer|/versions/1/infer)$")
_ROUTES = {"/predict": "/v1/models/{name}/predict", ":predict": "/v1/models/{name}:predict",
           "/recommend": "/v1/models/{name}/recommend",
           "/infer": "/v2/models/{name}/infer", "/versions/1/infer": "/v2/models/{name}/versions/1/infer"}
_ROW = re.compile(r"\b(?:row|line|history|image|series) (\d+)")
_COLUMN = re.compile(r"column '([^']+)'|^(?:missing|unexpected) columns?(?: in [^:]+)?: ([^ ,;(]+)")


class _TooLarge(Exception):
    pass


def _error(status: int, message: str, problems: list[Problem] | None = None, headers: dict | None = None,
           request_id: str | None = None):
    body = ErrorBody(error=message, problems=problems or [], id=request_id).model_dump(exclude_none=True)
    return JSONResponse(body, status_code=status, headers=headers)


def _problems(error: ValidationError, named_columns: bool) -> list[Problem]:
    """Pydantic's errors in the words ``layerforge predict`` uses for the same mistakes."""
    found = []
    for item in error.errors(include_url=False):
        loc = list(item["loc"])
        row = loc[1] + 1 if len(loc) > 1 and loc[0] == "rows" and isinstance(loc[1], int) else None
        field = None
        if named_columns and loc[:1] == ["rows"] and len(loc) > 2:
            field = str(loc[2])
        elif named_columns and loc[:1] == ["columns"] and len(loc) > 1:
            field = str(loc[1])
            row = loc[2] + 1 if len(loc) > 2 and isinstance(loc[2], int) else None
        elif loc:
            field = ".".join(str(part) for part in loc)
        found.append(Problem(field=field, row=row, problem=_words(item, field if named_columns else None, row)))
    return found


def _words(item: dict, column: str | None, row: int | None) -> str:
    kind, value = item["type"], item.get("input")
    where = f" in row {row}" if row else ""
    if column is None:
        return item["msg"]
    if kind == "missing":
        return f"missing column: {column}{where}"
    if kind == "extra_forbidden":
        return f"unexpected column{where}: {column}; remove it"
    if kind == "literal_error":
        known = item["ctx"]["expected"].replace("'", "").replace(" or ", ", ")
        return (f"column '{column}': unseen category {value!r}{where} (known: {known}); fix the value, or map unseen "
                "categories to an unknown bucket with data.unknown_categories: bucket (--unknown-categories bucket)")
    if kind.startswith(("float", "finite", "bool")):
        expected = "true/false values" if kind.startswith("bool") else "numbers"
        return (f"column '{column}': expected {expected}, found {value!r}{where}; send {expected} in this column, "
                "as the model was trained on")
    return f"column '{column}'{where}: {item['msg']}"


def _data_problem(message: str, columns: list[str] | None = None) -> Problem:
    """The field and row a message names. A name after "missing column: " is the longest of the
    model's ``columns`` the message goes on with (names may hold spaces), else its first word."""
    row, column = _ROW.search(message), _COLUMN.search(message)
    field = column and (column.group(1) or column.group(2))
    if column and column.group(2) and columns:
        rest = message[column.start(2):]
        field = max((name for name in columns if rest.startswith(name)), key=len, default=field)
    return Problem(field=field, row=row and int(row.group(1)), problem=message)


class Service:
    """The served models, their batch workers and the numbers /metrics shows."""

    def __init__(self, models: list, options: ServeOptions):
        self.options, self.metrics = options, Metrics()
        self.models = {served.name: served for served in models}
        self.schemas = {served.name: Schemas(served) for served in models}
        self.arriving, self.ready = 0, False
        self.paths: dict[str, dict] = {}  # the OpenAPI entries of routes FastAPI does not describe
        self.definitions: dict[str, dict] = {}
        self.batchers = {
            name: Batcher(served, max_batch=options.max_batch, wait_s=options.batch_wait_ms / 1000,
                          queue_size=options.queue_size, arriving=lambda: self.arriving,
                          on_batch=lambda rows, name=name: self.metrics.batch(name, rows))
            for name, served in self.models.items()}

    def start(self) -> None:
        import gc

        for batcher in self.batchers.values():
            batcher.start()
        # the libraries and models loaded so far are millions of long-lived objects: kept out of
        # the collector's full passes, which would otherwise stall every request for ~0.2 s
        gc.collect()
        gc.freeze()
        self.ready = True

    def stop(self) -> None:
        self.ready = False
        for batcher in self.batchers.values():
            batcher.stop()


class _Gate:
    """In front of every route: the API key, the body limit (checked before a body is parsed),
    the access log, /metrics' counts, and a 500 with an id (never a stack trace) for failures."""

    def __init__(self, app, service: Service, api_key: str | None):
        self.app, self.service = app, service
        self.key = api_key.encode("utf-8") if api_key else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, request_id = time.perf_counter(), uuid.uuid4().hex[:16]
        path, status = scope["path"], [0]
        headers = {k.decode("latin-1").lower(): v for k, v in scope.get("headers", [])}

        async def sending(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            refusal = self._refusal(path, headers)
            if refusal is not None:
                await refusal(scope, receive, sending)
                return
            await self.app(scope, self._limited(receive), sending)
        except _TooLarge:
            if not status[0]:
                await self._too_large()(scope, receive, sending)
        except Exception:  # noqa: BLE001 - answered as a 500 with an id; the log keeps the trace
            error_log.exception("request %s failed", request_id)
            if not status[0]:
                response = _error(500, "internal error: the service could not answer this request; quote the id "
                                       "when reporting it", request_id=request_id)
                await response(scope, receive, sending)
        finally:
            self._record(scope, path, status[0] or 500, time.perf_counter() - started, request_id)

    def _refusal(self, path: str, headers: dict):
        if self.key is not None and path.startswith(PROTECTED):
            given = headers.get("x-api-key", b"")
            authorization = headers.get("authorization", b"")
            if authorization[:7].lower() == b"bearer ":
                given = authorization[7:].strip()
            if not hmac.compare_digest(given, self.key):
                return _error(401, "missing or wrong API key: send it as 'Authorization: Bearer <key>' or "
                                   "'X-API-Key: <key>'", headers={"WWW-Authenticate": "Bearer"})
        length = headers.get("content-length")
        if length is not None:
            try:
                if int(length) > self.service.options.max_body:
                    return self._too_large()
            except ValueError:
                return _error(400, "Content-Length is not a number")
        return None

    def _too_large(self):
        limit = self.service.options.max_body
        return _error(413, f"the request body is larger than the service's limit of {limit} bytes; send fewer "
                           "rows per request (or start the service with a larger --max-body)")

    def _limited(self, receive):
        limit, seen = self.service.options.max_body, [0]

        async def receiving():
            message = await receive()
            if message["type"] == "http.request":
                seen[0] += len(message.get("body", b""))
                if seen[0] > limit:
                    raise _TooLarge()
            return message

        return receiving

    def _record(self, scope, path: str, status: int, seconds: float, request_id: str) -> None:
        match = _PREDICT.match(path)
        if match:
            named = match.group(1) or match.group(3)
            model = named if named in self.service.models else "unknown"
            route = _ROUTES[match.group(2) or match.group(4)]
        else:
            model = ""
            route = path if path in ("/healthz", "/readyz", "/metrics", "/v1/models", "/docs", "/redoc",
                                     "/openapi.json", "/v2", "/v2/health/live", "/v2/health/ready") \
                else ("/v1/models/{name}" if path.startswith("/v1/models/") else
                      "/v2/models/{name}" if path.startswith("/v2/models/") else "other")
        self.service.metrics.request(model, route, status, seconds)
        if access_log.isEnabledFor(logging.INFO):
            client = scope.get("client") or ("", 0)
            access_log.info(json.dumps({"time": round(time.time(), 3), "id": request_id, "client": client[0],
                                        "method": scope["method"], "path": path, "status": status,
                                        "ms": round(seconds * 1000, 3), "model": model or None}))


def create_app(models: list, options: ServeOptions | None = None):
    """The FastAPI app that serves ``models`` (``Served`` objects).

    Routes: ``POST /v1/models/{name}/predict``, ``GET /v1/models``, ``GET /v1/models/{name}``,
    ``GET /healthz``, ``GET /readyz``, ``GET /metrics``; the OpenAPI schema at /openapi.json and
    its pages at /docs.
    """
    options = options or ServeOptions()
    service = Service(models, options)

    @asynccontextmanager
    async def lifespan(app):
        service.start()
        try:
            yield
        finally:
            service.stop()

    app = FastAPI(title="layerforge", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Predictions from trained layerforge runs: " + ", ".join(service.models))
    _add_pages(app)
    app.state.service = service
    secured = {"security": [{"bearer": []}, {"apiKey": []}]} if options.api_key else {}
    common = {413: {"model": ErrorBody, "description": "the body is larger than --max-body"},
              500: {"model": ErrorBody, "description": "an internal failure, with the id the log gives it"}}
    if options.api_key:
        common[401] = {"model": ErrorBody, "description": "missing or wrong API key"}

    @app.get("/healthz", tags=["service"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["service"], summary="Models are loaded and requests are taken",
             responses={503: {"model": ErrorBody, "description": "starting or shutting down"}})
    async def readyz() -> dict[str, Any]:
        if not service.ready:
            return _error(503, "not ready: starting or shutting down", headers={"Retry-After": "1"})
        return {"status": "ready", "models": len(service.models)}

    @app.get("/metrics", tags=["service"], summary="Prometheus metrics", response_class=PlainTextResponse,
             responses=common, openapi_extra=secured)
    async def metrics():
        queues = {name: batcher.waiting for name, batcher in service.batchers.items()}
        return PlainTextResponse(service.metrics.text(queues), media_type="text/plain; version=0.0.4")

    @app.get("/v1/models", tags=["models"], summary="The models served", responses=common, openapi_extra=secured)
    async def list_models() -> list[ModelEntry]:
        return [ModelEntry(name=name, task=served.manifest.task) for name, served in service.models.items()]

    @app.get("/v1/models/{name}", tags=["models"], summary="A model: task, input schema, classes, metrics, versions",
             responses={**common, 404: {"model": ErrorBody, "description": "no model of that name"}},
             openapi_extra=secured)
    async def describe(name: str) -> dict[str, Any]:
        if name not in service.models:
            return _unknown(name)
        return service.models[name].info(service.schemas[name].row_schema)

    def _unknown(name: str):
        return _error(404, f"no model named {name!r}; this service has: {', '.join(service.models)} "
                           "(GET /v1/models lists them)")

    for name, served in service.models.items():
        _add_predict(app, service, served, service.schemas[name], common, secured)
        _add_protocols(app, service, served, service.schemas[name], secured)
        if served.recommends:
            _add_recommend(app, service, served, common, secured)

    @app.get("/v2", tags=["open inference protocol (V2)"], summary="The server's name, version and extensions")
    async def v2_server() -> dict[str, Any]:
        return {"name": "layerforge", "version": __version__, "extensions": ["binary_tensor_data"]}

    @app.get("/v2/health/live", tags=["open inference protocol (V2)"], summary="The process is alive")
    async def v2_live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready", tags=["open inference protocol (V2)"], summary="Models are loaded",
             responses={503: {"description": "starting or shutting down"}})
    async def v2_ready():
        return JSONResponse({"ready": service.ready}, status_code=200 if service.ready else 503)

    @app.api_route("/v2/models/{name}", methods=["GET"], include_in_schema=False)
    @app.api_route("/v2/models/{name}/ready", methods=["GET"], include_in_schema=False)
    @app.api_route("/v2/models/{name}/infer", methods=["POST"], include_in_schema=False)
    async def v2_unknown(name: str):
        return _unknown(name)

    @app.api_route("/v1/models/{target}", methods=["POST"], include_in_schema=False)
    async def v1_unknown(target: str):  # NAME:predict of a model not served
        return _unknown(target.split(":", 1)[0])

    @app.post("/v1/models/{name}/predict", tags=["predict"], summary="Any other name: no such model",
              responses={**common, 404: {"model": ErrorBody, "description": "no model of that name"}},
              openapi_extra=secured)
    async def unknown_model(name: str):
        return _unknown(name)

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            components = schema.setdefault("components", {})
            definitions = components.setdefault("schemas", {})
            definitions.update(service.definitions)
            static = dict(service.paths)
            static.update(schema["paths"])  # the other routes, with /v1/models/{name}/predict after the static ones
            schema["paths"] = static
            if options.api_key:
                components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"},
                                                 "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi
    app.add_middleware(_Gate, service=service, api_key=options.api_key)
    return app


# the API pages may load only from the service itself (ReDoc would fetch its maker's logo from a CDN)
PAGE_POLICY = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
               "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'")
PAGE_FILES = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css",
              "redoc.standalone.js": "text/javascript", "favicon.png": "image/png"}


def _add_pages(app) -> None:
    """/docs (Swagger UI) and /redoc (ReDoc), their scripts and styles served from the files the
    fastapi-offline package ships, and a policy that lets the pages load only from the service:
    nothing is requested from another machine."""
    from importlib.resources import files

    from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
    from fastapi.responses import Response

    folder = files("fastapi_offline").joinpath("static")
    cache: dict[str, bytes] = {}

    async def page_file(request: Request):
        name = request.path_params["name"]
        if name not in PAGE_FILES:
            return _error(404, f"no page file named {name!r}")
        if name not in cache:
            cache[name] = folder.joinpath(name).read_bytes()
        return Response(cache[name], media_type=PAGE_FILES[name], headers={"Cache-Control": "public, max-age=86400"})

    def kept_local(page):
        page.headers["Content-Security-Policy"] = PAGE_POLICY
        return page

    async def docs(request: Request):
        return kept_local(get_swagger_ui_html(openapi_url="/openapi.json", title="layerforge: API",
                                   swagger_js_url="/docs/files/swagger-ui-bundle.js",
                                   swagger_css_url="/docs/files/swagger-ui.css",
                                   swagger_favicon_url="/docs/files/favicon.png"))

    async def redoc(request: Request):
        return kept_local(get_redoc_html(openapi_url="/openapi.json", title="layerforge: API",
                              redoc_js_url="/docs/files/redoc.standalone.js",
                              redoc_favicon_url="/docs/files/favicon.png", with_google_fonts=False))

    app.add_route("/docs", docs, methods=["GET"], include_in_schema=False)
    app.add_route("/redoc", redoc, methods=["GET"], include_in_schema=False)
    app.add_route("/docs/files/{name}", page_file, methods=["GET"], include_in_schema=False)


def _add_predict(app, service: Service, served, schemas: Schemas, common: dict, secured: dict) -> None:
    name = served.name
    request_schema, request_definitions = schemas.request_schema(REF)
    content = {"application/json": {"schema": request_schema}}
    if schemas.csv:
        content["text/csv"] = {"schema": {"type": "string", "description": "a CSV table with a header line"}}
    if schemas.sound:
        content.update({media: {"schema": {"type": "string", "format": "binary", "description": "one clip"}}
                        for media in SOUND_MEDIA})
    responses = {
        **{str(status): entry["description"] for status, entry in common.items()},
        "200": "one answer per row, in order",
        "415": "a body that is neither JSON nor (for tables) CSV nor (for sound) a sound file",
        "422": "rows the model cannot read: the field, row and problem",
        "503": "the queue is full; retry after Retry-After seconds",
    }
    answer_schema, answer_definitions = schemas.response_schema(REF)

    async def predict(request: Request):
        service.arriving += 1
        try:
            parsed = await _parse(request, served, schemas)
        finally:
            service.arriving -= 1
        if not isinstance(parsed, tuple):
            return parsed
        found = await _answers(service, served, parsed, 422)
        return found if not isinstance(found, list) else JSONResponse({"predictions": found})

    # a plain Starlette route: the hot path skips FastAPI's parameter machinery (it has none to
    # solve), and its OpenAPI entry is written here, from the same schemas
    path = f"/v1/models/{name}/predict"
    app.add_route(path, predict, methods=["POST"], include_in_schema=False)
    error = {"application/json": {"schema": {"$ref": REF.format(model="ErrorBody")}}}
    operation = {
        "tags": ["predict"], "summary": f"Predict with {name} ({served.manifest.task})",
        "operationId": f"predict_{re.sub(r'[^A-Za-z0-9_]', '_', name)}",
        "requestBody": {"required": True, "content": content},
        "responses": {status: {"description": about,
                               "content": {"application/json": {"schema": answer_schema}} if status == "200" else error}
                      for status, about in responses.items()},
        **secured,
    }
    service.paths[path] = {"post": operation}
    service.definitions.update({**request_definitions, **answer_definitions})


def _add_recommend(app, service: Service, served, common: dict, secured: dict) -> None:
    """``POST /v1/models/{name}/recommend``: each user's best items the user did not have in
    training (a recommendation run)."""

    async def recommend(request: RecommendRequest) -> dict[str, Any]:
        try:
            lists = await service.batchers[served.name].run(lambda: served.recommend(request.users, request.k))
        except Busy:
            return _error(503, f"the queue for {served.name} is full ({service.options.queue_size} requests); retry "
                               "shortly", headers={"Retry-After": "1"})
        except (LayerforgeError, ValueError) as error:
            message = " ".join(str(error).split())
            return _error(422, message, [_data_problem(message)])
        return {"recommendations": lists}

    app.post(f"/v1/models/{served.name}/recommend", tags=["recommend"],
             summary=f"Recommend with {served.name}: each user's best unseen items",
             responses={**common, 422: {"model": ErrorBody, "description": "a user the run never saw"}},
             openapi_extra=secured)(recommend)


_GENERATE = {  # what a request asks of a model that does not answer rows, by what its task serves
    "samples": lambda served, payload: served.sample(payload.n, getattr(payload, "label", None), payload.seed),
    "text": lambda served, payload: served.generate(payload.prompt, payload.length, payload.temperature,
                                                    payload.top_k, payload.seed),
}


async def _answers(service: Service, served, parsed: tuple, refused: int):
    """The answers to validated rows (through the model's batch worker), or the error response:
    ``refused`` is the status for rows the model cannot read (422 here, 400 in the protocols)."""
    payload, count = parsed
    try:
        if served.task.answers_rows:
            return await service.batchers[served.name].predict(payload, count)
        return await service.batchers[served.name].run(lambda: _GENERATE[served.task.serves](served, payload))
    except Busy:
        return _error(503, f"the queue for {served.name} is full ({service.options.queue_size} requests); retry "
                           "shortly", headers={"Retry-After": "1"})
    except (LayerforgeError, ValueError) as error:
        message = " ".join(str(error).split())
        return _error(refused, message, [_data_problem(message, served.manifest.features)])


async def _parse(request, served, schemas: Schemas):
    """(payload, rows) for a request body, or the error response that answers it."""
    body = await request.body()
    media = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if media == "text/csv" and schemas.csv:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as error:
            return _error(422, f"the CSV body is not UTF-8 text ({error.reason} at byte {error.start})")
        return CsvText(text), max(1, text.count("\n"))
    if media in SOUND_MEDIA and schemas.sound:
        return bytes(body), 1  # one clip, read by the run's codec
    if media not in JSON_MEDIA and not media.endswith("+json"):
        accepted = "application/json" + (" or text/csv" if schemas.csv else "") + \
            (f" or a sound file ({', '.join(SOUND_MEDIA)})" if schemas.sound else "")
        return _error(415, f"send the body as {accepted}, not {media}")
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as error:
        return _error(422, f"the body is not JSON: {error}")
    return _validated(payload, served, schemas, 422)


def _validated(payload, served, schemas: Schemas, refused: int):
    """(payload, rows) for a parsed JSON body in the own route's form, or the error response
    (status ``refused``) that names each problem."""
    key = schemas.body_for(payload)
    try:
        validated = schemas.adapters[key].validate_python(payload)
    except ValidationError as error:
        problems = _problems(error, served.named_columns)
        return _error(refused, f"{len(problems)} problem(s) in the request: {problems[0].problem}", problems)
    if not served.task.answers_rows:
        return validated, 1
    if key == "columns":
        columns = validated.columns
        return columns, len(next(iter(columns.values())))
    return validated.rows, len(validated.rows)


V2_TENSOR = {"type": "object", "required": ["name", "shape", "datatype"],
             "properties": {"name": {"type": "string"}, "shape": {"type": "array", "items": {"type": "integer"}},
                            "datatype": {"type": "string", "enum": list(protocols.V2_TYPES)},
                            "parameters": {"type": "object"}, "data": {"type": "array", "items": {}}}}


def _protocol_operations(served, secured: dict) -> dict[str, dict]:
    """The OpenAPI entries of a model's KServe V1 and V2 routes."""
    name, error = served.name, {"application/json": {"schema": {"$ref": REF.format(model="ErrorBody")}}}
    instances = ("a mapping of columns, or a list of values in the order of the features"
                 if served.named_columns else "a row, as the own route's rows")
    v1 = {"tags": ["KServe V1"], "summary": f"Predict with {name} (KServe V1)",
          "operationId": f"kserve_v1_{re.sub(r'[^A-Za-z0-9_]', '_', name)}",
          "requestBody": {"required": True, "content": {"application/json": {"schema": {
              "type": "object", "required": ["instances"],
              "properties": {"instances": {"type": "array", "minItems": 1, "items": {}, "description": instances}}}}}},
          "responses": {"200": {"description": "one prediction per instance", "content": {"application/json": {
              "schema": {"type": "object", "properties": {"predictions": {"type": "array", "items": {}}}}}}},
              "400": {"description": "rows the model cannot read, in the words of the own route",
                      "content": error}}, **secured}
    v2 = {"tags": ["Open Inference Protocol (V2)"], "summary": f"Infer with {name} (V2 tensors)",
          "operationId": f"v2_infer_{re.sub(r'[^A-Za-z0-9_]', '_', name)}",
          "requestBody": {"required": True, "content": {"application/json": {"schema": {
              "type": "object", "required": ["inputs"],
              "properties": {"id": {"type": "string"}, "inputs": {"type": "array", "items": V2_TENSOR},
                             "outputs": {"type": "array", "items": {"type": "object"}}}}}}},
          "responses": {"200": {"description": "one output tensor per answer field", "content": {"application/json": {
              "schema": {"type": "object", "properties": {"model_name": {"type": "string"},
                                                          "outputs": {"type": "array", "items": V2_TENSOR}}}}}},
              "400": {"description": "rows the model cannot read, in the words of the own route",
                      "content": error}}, **secured}
    return {f"/v1/models/{name}:predict": {"post": v1}, f"/v2/models/{name}/infer": {"post": v2}}


def _add_protocols(app, service: Service, served, schemas: Schemas, secured: dict) -> None:
    """KServe V1 and Open Inference Protocol (V2) routes for one model (``protocols``): each
    request is translated into the own route's body and answered by the same road."""
    name = served.name

    async def answered(body: dict):
        """The answers to a body in the own route's form, or the error response (a 400, as these
        protocols answer errors, with the own route's words)."""
        parsed = _validated(body, served, schemas, 400)
        if not isinstance(parsed, tuple):
            return parsed
        return await _answers(service, served, parsed, 400)

    async def v1_predict(request: Request):
        try:
            payload = json.loads(await request.body())
        except (ValueError, RecursionError) as error:
            return _error(400, f"the body is not JSON: {error}")
        try:
            body = protocols.v1_body(payload, served)
        except protocols.Refused as error:
            return _error(400, str(error))
        found = await answered(body)
        return found if not isinstance(found, list) else JSONResponse({"predictions": found})

    async def v2_infer(request: Request):
        if not served.task.answers_rows:
            return _error(400, f"{name} generates ({served.manifest.task}); V2 inference answers rows: use "
                               f"POST /v1/models/{name}/predict")
        try:
            inference = protocols.v2_request(await request.body(),
                                             request.headers.get("inference-header-content-length"))
            body = protocols.v2_body(inference, served)
        except protocols.Refused as error:
            return _error(400, str(error))
        found = await answered(body)
        if not isinstance(found, list):
            return found
        try:
            outputs = protocols.v2_outputs(found, inference.get("outputs"))
        except protocols.Refused as error:
            return _error(400, str(error))
        answer = {"model_name": name, "model_version": "1", "outputs": outputs}
        if "id" in inference:
            answer["id"] = inference["id"]
        return JSONResponse(answer)

    metadata = None

    async def v2_metadata(request: Request):
        nonlocal metadata
        if metadata is None:
            metadata = protocols.v2_metadata(served, schemas.row_schema, served.example_answers())
        return JSONResponse(metadata)

    async def v2_ready(request: Request):
        return JSONResponse({"name": name, "ready": service.ready}, status_code=200 if service.ready else 503)

    if served.task.answers_rows:
        service.paths.update(_protocol_operations(served, secured))
    app.add_route(f"/v1/models/{name}:predict", v1_predict, methods=["POST"], include_in_schema=False)
    app.add_route(f"/v2/models/{name}/infer", v2_infer, methods=["POST"], include_in_schema=False)
    app.add_route(f"/v2/models/{name}/versions/1/infer", v2_infer, methods=["POST"], include_in_schema=False)
    app.add_route(f"/v2/models/{name}", v2_metadata, methods=["GET"], include_in_schema=False)
    app.add_route(f"/v2/models/{name}/ready", v2_ready, methods=["GET"], include_in_schema=False)
