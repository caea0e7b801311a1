"""The Diagnose page: upload a bundle or paste an excerpt, get the CLI's findings as the node page's cards.

Any signed-in user may use it: it reads nothing stored and keeps nothing. Errors
(corrupt archive, too big, not a bundle, empty or unrecognized paste) answer 400 with
the page and its message; an htmx request gets only the result panel.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http import HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt, csrf_protect
from django.views.decorators.http import require_http_methods

from dashboard import analysis

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


@login_required
@csrf_exempt  # checked by ``_diagnose`` once the size limit is in place (Django's upload-handler pattern)
@require_http_methods(["GET", "POST"])
def diagnose(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _page(request, {})
    limit = SizeLimit(request, settings.WND_MAX_UPLOAD_BYTES)
    request.upload_handlers = [limit, *request.upload_handlers]
    try:
        request.POST  # noqa: B018 -- parse now, under the limit, so a form too large gets this page's answer
    except RequestDataTooBig:
        return _page(
            request, {"error": "The pasted text is too large for this box: upload it in a bundle."}, status=400
        )
    except (MultiPartParserError, TooManyFieldsSent, TooManyFilesSent) as exc:
        return _page(request, {"error": f"The form could not be read: {exc}"}, status=400)
    return _diagnose(request, limit)


@csrf_protect
def _diagnose(request: HttpRequest, limit: SizeLimit) -> HttpResponse:
    mode = request.POST.get("mode", "")
    context: dict[str, Any] = {"mode": mode}
    upload = request.FILES.get("bundle")
    try:
        if mode == "paste":
            text = request.POST.get("text", "")
            context["text"] = text
            context["result"] = analysis.analyze_paste(text)
        elif limit.exceeded:
            raise analysis.AnalysisError(analysis.too_big(limit.max_bytes))
        elif upload is None:
            raise analysis.AnalysisError("Choose a bundle to upload (.zip, .tar.gz or .tgz).")
        else:
            context["result"] = analysis.analyze_upload(upload, max_bytes=limit.max_bytes)
    except analysis.AnalysisError as exc:
        context["error"] = str(exc)
        return _page(request, context, status=400)
    finally:
        analysis.discard(upload)
    return _page(request, context)
