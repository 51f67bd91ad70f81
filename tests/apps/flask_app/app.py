"""A small Flask app, as people deploy them: `module = app:app` or `wsgi-file = app.py` with
`callable = app`; `application` is also defined for servers that default to that name.

  /       text/plain "Hello from Flask"
  /json   a JSON object
  /post   POST: JSON {"form": {...}, "json": ..., "args": {...}} of what was posted
"""

import os

from flask import Flask, jsonify, request

app = Flask(__name__)


@app.get("/")
def index():
    return "Hello from Flask", 200, {"Content-Type": "text/plain; charset=utf-8"}


@app.get("/json")
def json_route():
    return jsonify(framework="flask", message="hello", pid=os.getpid(), numbers=[1, 2, 3])


@app.post("/post")
def post():
    return jsonify(
        form=request.form.to_dict(flat=False),
        json=request.get_json(silent=True),
        args=request.args.to_dict(flat=False),
    )


application = app
