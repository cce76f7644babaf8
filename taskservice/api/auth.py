"""API keys: off unless API_KEYS is set; then every /api/v1 route (and, if asked, the docs
and /metrics) needs `Authorization: Bearer <key>` or `X-API-Key: <key>`."""

import hashlib
import hmac

from aiohttp import web

from taskservice.api.problems import Problem
from taskservice.settings import Settings

API_PREFIX = "/api/v1/"
DOCS_PATHS = ("/docs", "/api/docs/swagger.json")
DOCS_PREFIX = "/static/swagger/"
METRICS_PATH = "/metrics"
REALM = 'Bearer realm="taskservice"'
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "One of the API_KEYS as a bearer token."},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key", "description": "One of the API_KEYS."},
}


def is_protected(path: str, settings: Settings) -> bool:
    if not settings.api_keys:
        return False
    if path.startswith(API_PREFIX) or path == API_PREFIX.rstrip("/"):
        return True
    if path in DOCS_PATHS or path.startswith(DOCS_PREFIX) or path == DOCS_PREFIX.rstrip("/"):
        return settings.auth_protect_docs
    return path == METRICS_PATH and settings.auth_protect_metrics


def request_is_protected(request: web.Request, settings: Settings) -> bool:
    """By the path as sent and by the route it matched: however a path is spelt, the
    handler it reaches decides too."""
    resource = request.match_info.route.resource
    return is_protected(request.path, settings) or (
        resource is not None and is_protected(resource.canonical, settings))


def _digest(key: str) -> bytes:
    # Compared as digests: equal lengths, so compare_digest's time says nothing of a key's length.
    # surrogateescape: header bytes that are not UTF-8 make a wrong key, not a crash.
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


def presented_keys(request: web.Request) -> list[str]:
    keys = []
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        keys.append(token.strip())
    if api_key := request.headers.get("X-API-Key", "").strip():
        keys.append(api_key)
    return keys


def is_valid(presented: list[str], digests: tuple[bytes, ...]) -> bool:
    """Constant time: every presented key is compared with every configured one, no early exit."""
    valid = False
    for key in presented:
        candidate = _digest(key)
        for digest in digests:
            valid |= hmac.compare_digest(candidate, digest)
    return valid


def auth_middleware(settings: Settings):
    """The middleware for these settings (a pass-through when API_KEYS is empty)."""
    digests = tuple(_digest(key) for key in settings.api_keys)

    @web.middleware
    async def check_api_key(request: web.Request, handler) -> web.StreamResponse:
        if request_is_protected(request, settings):
            presented = presented_keys(request)
            if not presented:
                raise Problem(401, "This endpoint needs an API key: send `Authorization: Bearer <key>` "
                                   "or `X-API-Key: <key>`.", headers={"WWW-Authenticate": REALM})
            if not is_valid(presented, digests):
                # The key itself is never logged or echoed.
                raise Problem(401, "The API key is not valid.",
                              headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'})
        return await handler(request)

    return check_api_key


def document_security(spec: dict, settings: Settings) -> dict:
    """Name both schemes in the spec; with API_KEYS set, protected operations require one and
    document their 401. Without keys nothing is required, and the spec says so."""
    spec.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    for path, operations in spec["paths"].items():
        if not is_protected(path, settings):
            continue
        for operation in operations.values():
            operation["security"] = [{"bearer": []}, {"apiKey": []}]
            operation["responses"].setdefault("401", {
                "description": "Missing or invalid API key",
                "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
            })
    return spec
