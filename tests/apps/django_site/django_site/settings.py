"""A minimal Django project: no database, no templates, no static files; production-like
(DEBUG off) so errors look as they do on a real deployment.

Serve it with the project directory on sys.path, e.g.
`chdir = tests/apps/django_site` + `module = django_site.wsgi`.
"""

SECRET_KEY = "kaiser-tests-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = []
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "django_site.urls"
WSGI_APPLICATION = "django_site.wsgi.application"

DATABASES = {}
TEMPLATES = []
USE_TZ = True
USE_I18N = False
