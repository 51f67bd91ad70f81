"""`wsgi_suite.py` wrapped in `wsgiref.validate.validator`, which asserts that both sides of
every call keep PEP 3333: a server that breaks the spec turns a route into a 500 with an
AssertionError in the log.

`wsgi_suite.py` is loaded from beside this file by path, so this works whatever sys.path the
server sets up (uWSGI's `wsgi-file` does not add the file's directory).
"""

import importlib.util
import os
from wsgiref.validate import validator

_path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wsgi_suite.py")
_spec = importlib.util.spec_from_file_location("wsgi_suite", _path)
wsgi_suite = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(wsgi_suite)

application = validator(wsgi_suite.application)
