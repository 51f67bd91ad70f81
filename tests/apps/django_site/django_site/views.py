import os

from django.http import HttpResponse, JsonResponse


def hello(request):
    return HttpResponse("Hello from Django", content_type="text/plain; charset=utf-8")


def json_view(request):
    return JsonResponse(
        {
            "framework": "django",
            "message": "hello",
            "pid": os.getpid(),
            "path": request.path,
            "method": request.method,
            "host": request.get_host(),
        }
    )
