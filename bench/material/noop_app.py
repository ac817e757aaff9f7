# Bench material: the ceiling. A no-op ASGI app on the same uvicorn stack as mps-callback,
# kept in the repository so the bench measures against it without anything beside the clone.
"""The ceiling: an ASGI app that reads and JSON-decodes the body and answers 200, doing no work."""
import orjson


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        msg = await receive()
        body += msg.get("body", b"")
        more = msg.get("more_body", False)
    orjson.loads(body)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"code":0}'})
