"""The Diagnose page: upload a bundle or paste an excerpt, get the CLI's findings as the node page's cards.

Any signed-in user may use it: it reads nothing stored and keeps nothing. The upload goes
to a temporary file and is analyzed in a child process with memory and time limits
(``dashboard.pages.sandbox``); the view is a coroutine, so the wait holds no thread of the web
process. Errors (corrupt archive, too big, not a bundle, empty or unrecognized paste, over
the limits) answer 400 with the page and its message; a user with an analysis already
running gets 429. An htmx request gets only the result panel.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.files.uploadhandler import FileUploadHandler, StopUpload, TemporaryFileUploadHandler
from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods

from dashboard.pages import analysis, sandbox

TEMPLATE = "dashboard/diagnose.html"


class SizeLimit(FileUploadHandler):
    """Stops an upload as soon as it passes ``max_bytes``, before Django has spooled it all to disk.

    It goes first among the request's handlers and passes every chunk on; fields sent
    before the file (the CSRF token, the form's mode) are still parsed.
    """

    def __init__(self, request: HttpRequest, max_bytes: int) -> None:
        super().__init__(request)
        self.max_bytes = max_bytes
        self.exceeded = False

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        if self.content_length is not None and self.content_length > self.max_bytes:
            self.exceeded = True
            raise StopUpload(connection_reset=False)  # read the rest, so the browser gets the page

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        if start + len(raw_data) > self.max_bytes:
            self.exceeded = True
            raise StopUpload(connection_reset=False)  # read the rest, so the browser gets the page
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None  # the next handler (memory or temporary file) holds the data


def _page(request: HttpRequest, context: dict[str, Any], *, status: int = 200) -> HttpResponse:
    context.setdefault("max_upload_bytes", settings.WND_MAX_UPLOAD_BYTES)
    context.setdefault("paste_hint", analysis.PASTE_HINT)
    if request.headers.get("HX-Request") == "true" and request.method == "POST":
        return render(request, f"{TEMPLATE}#diagnose-result", context, status=status)
    return render(request, TEMPLATE, context, status=status)


async def _apage(request: HttpRequest, context: dict[str, Any], *, status: int = 200) -> HttpResponse:
    # Rendering reads the session and the user's groups (the database): a sync context.
    return await sync_to_async(_page)(request, context, status=status)


@login_required
@csrf_exempt  # checked by ``_diagnose`` once the size limit is in place (Django's upload-handler pattern)
@require_http_methods(["GET", "POST"])
async def diagnose(request: HttpRequest) -> HttpResponse:
    """The page; a POST is analyzed in the sandbox while this coroutine waits, holding no thread."""
    if request.method == "GET":
        return await _apage(request, {})
    limit = SizeLimit(request, settings.WND_MAX_UPLOAD_BYTES)
    # Every upload goes to a temporary file (never memory), which the sandbox reads in place.
    request.upload_handlers = [limit, TemporaryFileUploadHandler(request)]
    try:
        # Parsed now, under the limit, so that a form too large gets this page's answer. Not on the
        # thread that serves every other sync view (``/healthz``...): a big upload takes a while.
        await sync_to_async(lambda: request.POST, thread_sensitive=False)()
    except RequestDataTooBig:
        return await _apage(
            request, {"error": "The pasted text is too large for this box: upload it in a bundle."}, status=400
        )
    except (MultiPartParserError, TooManyFieldsSent, TooManyFilesSent) as exc:
        return await _apage(request, {"error": f"The form could not be read: {exc}"}, status=400)
    return await _diagnose(request, limit)


@csrf_protect
async def _diagnose(request: HttpRequest, limit: SizeLimit) -> HttpResponse:
    mode = request.POST.get("mode", "")
    context: dict[str, Any] = {"mode": mode}
    upload = request.FILES.get("bundle")
    user = await request.auser()
    try:
        async with sandbox.slot(int(user.pk or 0)):
            if mode == "paste":
                text = request.POST.get("text", "")
                context["text"] = text
                context["result"] = await analysis.analyze_paste(text)
            elif limit.exceeded:
                raise analysis.AnalysisError(analysis.too_big(limit.max_bytes))
            elif upload is None:
                raise analysis.AnalysisError("Choose a bundle to upload (.zip, .tar.gz or .tgz).")
            else:
                context["result"] = await analysis.analyze_upload(upload, max_bytes=limit.max_bytes)
    except sandbox.Busy as exc:
        context["error"] = str(exc)
        return await _apage(request, context, status=429)
    except analysis.AnalysisError as exc:
        context["error"] = str(exc)
        return await _apage(request, context, status=400)
    finally:
        analysis.discard(upload)
    return await _apage(request, context)
