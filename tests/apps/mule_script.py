"""A mule's script (`mule = mule_script.py`): records each message it gets, its farm's too."""

import os

import uwsgi

OUT = os.environ["APP_OUT"]
with open(os.path.join(OUT, "script-started-%d" % os.getpid()), "w"):
    pass
while True:
    message = uwsgi.mule_get_msg()
    with open(os.path.join(OUT, "events.log"), "a") as log:
        log.write("script %d %d %s\n" % (os.getpid(), uwsgi.mule_id(), message.decode()))
